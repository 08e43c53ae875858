//! `kairo models package`: a model image read by skopeo, unpacked by umoci, and its entrypoint
//! started in the unpacked root filesystem (chroot, as the image's user: no container engine)
//! answering an OIP request as the project's own server does; the same digest twice; the model
//! directory and its refusals; the Kubernetes manifests.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::serving::{fixture, Serve};
use crate::Repo;

/// A tool from Debian (`.ci/oci-tools.sh` installs them); under CI its absence fails the test.
fn tool(name: &str) -> Option<String> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    match found {
        Some(p) => Some(p.display().to_string()),
        None if std::env::var_os("KAIRO_CI").is_some() => {
            panic!("{name} is not installed, and under CI a test never skips (.ci/oci-tools.sh installs it)")
        }
        None => {
            eprintln!("skipping: {name} is not installed (bash .ci/oci-tools.sh)");
            None
        }
    }
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn registered() -> Repo {
    let repo = Repo::new();
    let model = fixture("logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap(), "--description", "logistic"])
        .assert()
        .success();
    repo
}

fn infer(url: &str) -> Value {
    let data: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
    let body = json!({"inputs": [{"name": "input", "shape": [2, 20], "datatype": "FP32", "data": data}]});
    let r = reqwest::blocking::Client::new().post(format!("{url}/v2/models/clf/infer")).json(&body).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut v: Value = r.json().unwrap();
    // Only the answer: ids and timings differ between servers.
    v.as_object_mut().unwrap().retain(|k, _| k == "outputs" || k == "model_name" || k == "model_version");
    v
}

#[test]
fn a_model_image_is_read_unpacked_and_served_without_a_container_engine() {
    let Some(skopeo) = tool("skopeo") else { return };
    let Some(umoci) = tool("umoci") else { return };
    let Some(chroot) = tool("chroot") else { return };
    let repo = registered();
    let package = |out: &str| repo.json(&["models", "package", "clf:1", "--out", out]);
    let first = package("clf.oci.tar");
    let second = package("again.oci.tar");
    assert_eq!(first["digest"], second["digest"], "the same version, the same image");
    assert_eq!(repo.read("clf.oci.tar"), repo.read("again.oci.tar"), "byte for byte");
    let digest = first["digest"].as_str().unwrap().to_string();

    // skopeo reads the archive: the digest, the lineage labels, the entrypoint.
    let archive = format!("oci-archive:{}", repo.join("clf.oci.tar").display());
    let inspected: Value = serde_json::from_slice(&run(Command::new(&skopeo).args(["inspect", &archive]))).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str(), "{inspected}");
    let labels = &inspected["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "clf");
    assert_eq!(labels["org.opencontainers.image.version"], "1");
    assert_eq!(labels["org.opencontainers.image.description"], "logistic");
    assert!(labels["dev.kairo.model.hash"].as_str().unwrap().starts_with("blake3:"), "{labels}");
    let config: Value =
        serde_json::from_slice(&run(Command::new(&skopeo).args(["inspect", "--config", &archive]))).unwrap();
    let entrypoint: Vec<String> = serde_json::from_value(config["config"]["Entrypoint"].clone()).unwrap();
    assert_eq!(entrypoint, ["/usr/local/bin/kairo", "serve", "--model-dir", "/model"]);
    assert_eq!(config["config"]["User"], "65532:65532");

    // umoci unpacks it into a root filesystem with a runtime configuration.
    let layout = repo.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar").arg("-xf").arg(repo.join("clf.oci.tar")).arg("-C").arg(&layout));
    let bundle = repo.join("bundle");
    run(Command::new(&umoci).arg("unpack").arg("--image").arg(format!("{}:v1", layout.display())).arg(&bundle));
    let runtime: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["args"][0], "/usr/local/bin/kairo", "{}", runtime["process"]);
    assert_eq!(runtime["process"]["user"]["uid"], 65532);
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("model/model.onnx").is_file() && rootfs.join("model/kairo-model.json").is_file());

    // The entrypoint, started directly in that root filesystem as the image's user, with the
    // image's environment and our own arguments (as `docker run IMAGE ARGS` would).
    let env: Vec<String> = serde_json::from_value(config["config"]["Env"].clone()).unwrap();
    let mut cmd = Command::new(&chroot);
    cmd.env_clear()
        .envs(env.iter().filter_map(|kv| kv.split_once('=')))
        .arg("--userspec=65532:65532")
        .arg(&rootfs)
        .args(&entrypoint)
        .args(["--host", "127.0.0.1", "--port", "0"]);
    let (_served, url) = crate::spawn_command(cmd);
    let from_image = infer(&url);
    let ours = Serve::start(&repo, &["clf:1"]);
    assert_eq!(from_image, infer(&ours.url), "the image answers as the project's server does");
    let health = reqwest::blocking::get(format!("{url}/v2/health/ready")).unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[test]
fn a_model_directory_serves_and_refuses_what_was_altered() {
    let repo = registered();
    repo.kairo(&["models", "package", "clf", "--out-dir", "md"]).assert().success();
    let doc: Value = serde_json::from_slice(&repo.read("md/kairo-model.json")).unwrap();
    assert_eq!((doc["name"].as_str(), doc["version"].as_i64()), (Some("clf"), Some(1)), "{doc}");
    // Served with no project at all: a directory outside the repository, state in another.
    let elsewhere = Repo::bare();
    let dir = repo.join("md").display().to_string();
    let state = elsewhere.join("state").display().to_string();
    let (server, url) =
        crate::spawn_listening(&elsewhere, &["serve", "--model-dir", &dir, "--state-dir", &state, "--port", "0"]);
    let ours = Serve::start(&repo, &["clf:1"]);
    assert_eq!(infer(&url), infer(&ours.url));
    drop(server);

    // Refusals name the problem and start nothing.
    let refused = |args: &[&str], needle: &str| {
        let out = elsewhere.kairo(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && err.contains(needle), "{args:?}: {err}");
    };
    let mut onnx = repo.read("md/model.onnx");
    let last = onnx.len() - 1;
    onnx[last] ^= 1;
    repo.write("md/model.onnx", onnx);
    refused(&["serve", "--model-dir", &dir, "--state-dir", &format!("{state}2")], "was altered");
    refused(&["serve", "--model-dir", &state], "has no kairo-model.json");
    refused(&["serve", "clf", "--model-dir", &dir], "cannot be used with");
    repo.write("md/kairo-model.json", "{\"kairo_model\": 1, \"name\": \"clf\"}");
    refused(&["serve", "--model-dir", &dir, "--state-dir", &format!("{state}3")], "`version` must be 1 or more");
    let out = repo.kairo(&["models", "package", "clf:1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out FILE"));
    let out = repo.kairo(&["models", "package", "clf:7", "--out-dir", "x"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains('7'));
    assert!(!repo.join("x").exists(), "nothing written for a version that does not exist");
}

/// The manifests are valid Kubernetes objects (kubernetes-validate, from the registry, against
/// the Kubernetes schemas) with the readiness probe and the image named.
#[test]
fn kubernetes_manifests_for_the_image() {
    let repo = registered();
    let v = repo.json(&["models", "package", "clf:1", "--k8s", "k8s", "--image", "registry.example/ml/clf:1"]);
    assert_eq!(v["image"], "registry.example/ml/clf:1");
    let deployment = String::from_utf8(repo.read("k8s/deployment.yaml")).unwrap();
    for needle in [
        "kind: \"Deployment\"",
        "kind: \"Service\"",
        "kind: \"HorizontalPodAutoscaler\"",
        "/v2/health/ready",
        "registry.example/ml/clf:1",
    ] {
        assert!(deployment.contains(needle), "{needle}: {deployment}");
    }
    let isvc = String::from_utf8(repo.read("k8s/inferenceservice.yaml")).unwrap();
    assert!(isvc.contains("kind: \"InferenceService\"") && isvc.contains("kserve-container"), "{isvc}");
    let Some(python) = crate::server::python() else { return };
    let (ok, said) = validate(&python, &repo.join("k8s/deployment.yaml"));
    assert!(ok, "{said}");
    for kind in ["deployment", "service", "horizontalpodautoscaler"] {
        assert!(said.contains(&format!("passed for resource {kind}/kairo-clf")), "{kind}: {said}");
    }
    // KServe's custom predictor is a core/v1 PodSpec (containers, volumes) plus KServe's own
    // fields: kubernetes-validate has no KServe schema, so the predictor, less its KServe-only
    // `minReplicas`, is checked as the PodSpec of a Pod (read back by PyYAML on the way).
    let pod = repo.join("k8s/predictor-pod.yaml");
    let script = "import sys, yaml\nd = yaml.safe_load(open(sys.argv[1]))\nassert d['kind'] == 'InferenceService' and d['apiVersion'] == 'serving.kserve.io/v1beta1'\np = d['spec']['predictor']\np.pop('minReplicas')\nyaml.safe_dump({'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': d['metadata']['name']}, 'spec': p}, open(sys.argv[2], 'w'))\n";
    run(Command::new(&python).arg("-c").arg(script).arg(repo.join("k8s/inferenceservice.yaml")).arg(&pod));
    let (ok, said) = validate(&python, &pod);
    assert!(ok && said.contains("passed for resource pod/kairo-clf"), "{said}");
    // The checker does check: a field the schema does not have fails it.
    repo.write("k8s/broken.yaml", deployment.replacen("  replicas: 2", "  replicas: 2\n  replica: 2", 1));
    let (ok, said) = validate(&python, &repo.join("k8s/broken.yaml"));
    assert!(!ok, "{said}");
}

/// kubernetes-validate --strict on `file`: whether it passed, and what it said.
fn validate(python: &str, file: &Path) -> (bool, String) {
    let out = Command::new(python).args(["-m", "kubernetes_validate", "--strict"]).arg(file).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A registry of Docker's (Debian's `docker-registry`, distribution 2.8) with token
/// authentication: its token realm is this test's own small server, which checks a user's
/// password and signs a JWT (RS256, its certificate in `x5c`) the registry verifies against the
/// certificate it trusts. Killed when dropped.
struct Registry {
    process: crate::Listening,
    address: String,
}

const REGISTRY_USER: &str = "pusher";
const REGISTRY_PASSWORD: &str = "a registry password";

fn start_registry(binary: &str, dir: &Path) -> Registry {
    use std::io::{BufRead, BufReader, Read, Write};
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-subj",
        "/CN=kairo test token issuer",
    ]);
    openssl(&["x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der"]);
    let der = std::fs::read(dir.join("cert.der")).unwrap();
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let header = b64(json!({"alg": "RS256", "typ": "JWT", "x5c": [base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)]}).to_string().as_bytes());
    let realm = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let realm_url = format!("http://{}/token", realm.local_addr().unwrap());
    let key = dir.join("key.pem");
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}")
        )
    );
    std::thread::spawn(move || {
        for stream in realm.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    authorized |= name.eq_ignore_ascii_case("authorization") && value.trim() == basic;
                }
            }
            let target = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
            let query: std::collections::HashMap<String, String> = target
                .split_once('?')
                .map(|(_, q)| q)
                .unwrap_or("")
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect();
            let (status, body) = if !authorized {
                ("401 Unauthorized", json!({"errors": [{"code": "UNAUTHORIZED", "message": "wrong user or password"}]}))
            } else {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let access: Vec<Value> = query
                    .get("scope")
                    .and_then(|s| s.split_once(':'))
                    .and_then(|(kind, rest)| rest.rsplit_once(':').map(|(name, actions)| (kind, name, actions)))
                    .map(|(kind, name, actions)| {
                        vec![json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()})]
                    })
                    .unwrap_or_default();
                let claims = json!({
                    "iss": "kairo-test-issuer", "sub": REGISTRY_USER, "aud": query.get("service").cloned().unwrap_or_default(),
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()), "access": access,
                });
                let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
                let mut sign = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                sign.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
                let mut signature = Vec::new();
                sign.stdout.take().unwrap().read_to_end(&mut signature).unwrap();
                sign.wait().unwrap();
                let token = format!("{input}.{}", b64(&signature));
                ("200 OK", json!({"token": token, "access_token": token, "expires_in": 300}))
            };
            let body = body.to_string();
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  token:\n    realm: {realm_url}\n    service: kairo-test-registry\n    issuer: kairo-test-issuer\n    rootcertbundle: {}\n",
        dir.join("data").display(),
        dir.join("cert.pem").display()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new(binary)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let process = crate::Listening(child);
    let address = format!("127.0.0.1:{port}");
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the registry did not listen on {address}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Registry { process, address }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `--push` over the distribution API with token authentication: the registry holds the image
/// under the tag with the digest Kairo computed (skopeo reads it back); a second push uploads
/// nothing; wrong or missing credentials are refused by name.
#[test]
fn push_to_a_registry_with_token_authentication() {
    let Some(skopeo) = tool("skopeo") else { return };
    let Some(binary) = tool("docker-registry") else { return };
    let repo = registered();
    let dir = tempfile::tempdir().unwrap();
    let registry = start_registry(&binary, dir.path());
    let target = format!("{}/ml/clf:v1", registry.address);
    let push = |user: Option<&str>, password: &str| {
        let mut cmd = repo.kairo(&["models", "package", "clf:1", "--push", &target, "--json"]);
        cmd.env_remove("KAIRO_REGISTRY_USERNAME").env("KAIRO_REGISTRY_PASSWORD", password);
        if let Some(u) = user {
            cmd.env("KAIRO_REGISTRY_USERNAME", u);
        }
        cmd.output().unwrap()
    };
    let out = push(Some(REGISTRY_USER), REGISTRY_PASSWORD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (first["pushed"]["uploaded"].as_u64(), first["pushed"]["present"].as_u64()),
        (Some(4), Some(0)),
        "{first}"
    );
    let creds = format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}");
    let inspected: Value = serde_json::from_slice(&run(Command::new(&skopeo).args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{target}"),
    ])))
    .unwrap();
    assert_eq!(inspected["Digest"], first["digest"], "{inspected}");
    assert_eq!(inspected["Labels"]["dev.kairo.model"], "clf");

    let again: Value = serde_json::from_slice(&push(Some(REGISTRY_USER), REGISTRY_PASSWORD).stdout).unwrap();
    assert_eq!(
        (again["pushed"]["uploaded"].as_u64(), again["pushed"]["present"].as_u64()),
        (Some(0), Some(4)),
        "{again}"
    );
    assert_eq!(again["digest"], first["digest"]);

    for (user, password, needle) in [
        (Some(REGISTRY_USER), "wrong", "401 UNAUTHORIZED wrong user or password"),
        (None, "", "no credentials were sent: set KAIRO_REGISTRY_USERNAME"),
    ] {
        let out = push(user, password);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle) && err.contains(&registry.address), "{err}");
    }
    let out = repo.kairo(&["models", "package", "clf:1", "--push", "ml/clf:v1"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected REGISTRY/REPOSITORY:TAG"));
    drop(registry.process);
}
