//! Kubernetes manifests for a model image: a Deployment (readiness on `/v2/health/ready`,
//! liveness on `/v2/health/live`, non-root, read-only root filesystem with `/tmp` as an
//! emptyDir), a Service, a HorizontalPodAutoscaler on CPU, and a KServe `InferenceService`
//! with the image as a custom predictor. Written as YAML documents whose scalars are all
//! JSON-quoted (valid YAML 1.2, nothing left to YAML's implicit typing).

use serde_json::{json, Value};

use crate::model_image::{PORT, USER};

/// What the manifests are for.
#[derive(Debug, Clone)]
pub struct Target {
    pub model: String,
    pub version: i64,
    /// The image reference a cluster pulls (`registry/repo:tag` or `...@sha256:...`).
    pub image: String,
    /// The model's ONNX size, to size the memory request.
    pub model_bytes: u64,
}

/// A Kubernetes name from a model name: lower case, `[a-z0-9-]`, at most 63 characters.
pub fn name_of(model: &str) -> String {
    let mut n: String =
        model.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    n = n.trim_matches('-').to_string();
    let mut name = format!("kairo-{n}");
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// The image reference manifests use: the one given (or pushed), else `kairo-NAME:vVERSION`
/// (as a registry-less local tag).
pub fn image_ref(given: Option<&str>, model: &str, version: i64) -> String {
    given.map(str::to_string).unwrap_or_else(|| format!("{}:v{version}", name_of(model)))
}

/// Write `deployment.yaml` (Deployment, Service, HPA) and `inferenceservice.yaml` (KServe) for
/// `t` into `dir`; the paths written.
pub fn write(dir: &std::path::Path, t: &Target) -> crate::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(crate::io(dir.display()))?;
    let files = [("deployment.yaml", yaml(&deployment(t))), ("inferenceservice.yaml", yaml(&[inference_service(t)]))];
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(crate::io(path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn labels(t: &Target) -> Value {
    json!({
        "app.kubernetes.io/name": name_of(&t.model),
        "app.kubernetes.io/managed-by": "kairo",
        "kairo.dev/model-version": t.version.to_string(),
    })
}

fn probe(path: &str, period: u32) -> Value {
    json!({"httpGet": {"path": path, "port": PORT}, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": 3})
}

/// Memory to ask for: the model loaded a few times over (runtime graph, buffers) plus the server.
fn memory_request(bytes: u64) -> String {
    let mib = (bytes.saturating_mul(4) >> 20) + 128;
    format!("{mib}Mi")
}

fn container(t: &Target, name: &str) -> Value {
    json!({
        "name": name,
        "image": t.image,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": probe("/v2/health/ready", 5),
        "livenessProbe": probe("/v2/health/live", 10),
        "resources": {"requests": {"cpu": "500m", "memory": memory_request(t.model_bytes)}},
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": USER,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    })
}

/// Deployment, Service and HorizontalPodAutoscaler.
pub fn deployment(t: &Target) -> Vec<Value> {
    let name = name_of(&t.model);
    let selector = json!({"app.kubernetes.io/name": name});
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels(t)},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels(t)},
                    "spec": {
                        "containers": [container(t, "kairo")],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels(t)},
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "labels": labels(t)},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": 2,
                "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            },
        }),
    ]
}

/// A KServe InferenceService with the image as its custom predictor (KServe names the
/// container `kserve-container`); it speaks the Open Inference Protocol (v2).
pub fn inference_service(t: &Target) -> Value {
    let mut c = container(t, "kserve-container");
    // KServe mounts nothing at /tmp for a custom container: the predictor gets its own volume.
    c["volumeMounts"] = json!([{"name": "tmp", "mountPath": "/tmp"}]);
    json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name_of(&t.model), "labels": labels(t), "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
        "spec": {"predictor": {"minReplicas": 1, "containers": [c], "volumes": [{"name": "tmp", "emptyDir": {}}]}},
    })
}

/// YAML documents, `---` between them.
pub fn yaml(docs: &[Value]) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        emit(d, 0, &mut out);
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        _ => String::new(),
    }
}

/// A key as a plain scalar when it cannot be read as anything but that string, else quoted.
fn key(k: &str) -> String {
    let plain = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !["y", "n", "yes", "no", "on", "off", "true", "false", "null"].contains(&k.to_ascii_lowercase().as_str());
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

fn is_scalar(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => true,
    }
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, v) in o {
                let key = key(k);
                if is_scalar(v) {
                    out.push_str(&format!("{pad}{key}: {}\n", scalar(v)));
                } else {
                    out.push_str(&format!("{pad}{key}:\n"));
                    emit(v, indent + 2, out);
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for v in a {
                if is_scalar(v) {
                    out.push_str(&format!("{pad}- {}\n", scalar(v)));
                } else {
                    // The item's first line follows the dash; the rest is indented under it.
                    let mut inner = String::new();
                    emit(v, indent + 2, &mut inner);
                    let trimmed = inner.trim_start_matches(' ');
                    out.push_str(&format!("{pad}- {trimmed}"));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kubernetes_names() {
        assert_eq!(name_of("Churn Model_v2"), "kairo-churn-model-v2");
        assert!(name_of(&"x".repeat(100)).len() <= 63);
    }

    #[test]
    fn yaml_nests_maps_and_lists() {
        let v = json!({"a": {"b": [1, {"c": "d", "on": [true]}], "f": {}}, "g h": "h: i"});
        assert_eq!(
            yaml(&[v]),
            "a:\n  b:\n    - 1\n    - c: \"d\"\n      \"on\":\n        - true\n  f: {}\n\"g h\": \"h: i\"\n"
        );
    }
}
