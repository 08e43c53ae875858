//! The deployment state machine: what a deploy, a rollback, the rollout guard's verdict and a
//! failed load change, and when each is refused. The `plan_*` functions and [`judge`] are pure:
//! from the deployment as it is and a request to the change to commit (a [`DeploymentChange`],
//! which the store commits with its event). [`deploy`] and [`rollback`] wrap them with the
//! store; the CLI, the inference server's guard and the closed loop all come through here.
//!
//! States: not deployed → stable (direct) → stable + candidate (canary or shadow) → stable
//! (completed: the candidate took 100%, or rolled back: the candidate was dropped).

use kairo_core::serving::{Deployment, RolloutLimits, Strategy};
use kairo_core::signature::{Signature, TensorSpec};
use kairo_core::EventKind;
use kairo_data::Project;
use kairo_store::serving::DeploymentChange;
use kairo_store::Metadata;

use crate::{artifact_of, load_model, version_bytes, RegistryError, Result};

/// Why a rollout request was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("canary weight {0}%: a canary takes 1 to 99 percent of traffic")]
    Weight(u32),
    #[error("{name} has no stable version yet: the first deployment must be direct (`--strategy direct`)")]
    FirstNotDirect { name: String },
    #[error("version {version} is already the stable version of {name}")]
    AlreadyStable { name: String, version: i64 },
    #[error(
        "version {version} takes different inputs than stable version {stable} ({} vs {}); use --force to deploy anyway",
        spec_list(.candidate_inputs), spec_list(.stable_inputs)
    )]
    InputsDiffer { version: i64, stable: i64, candidate_inputs: Vec<TensorSpec>, stable_inputs: Vec<TensorSpec> },
    #[error("{name} is not deployed; nothing to roll back")]
    NotDeployed { name: String },
    #[error("{name} has no earlier version that served 100%")]
    NoEarlierVersion { name: String },
    #[error("max error rate {0}: must be between 0 and 1")]
    ErrorRate(f64),
    #[error("max p99 {0} ms: must be positive")]
    P99(f64),
    #[error("the deployment of {name} changed concurrently; try again")]
    Concurrent { name: String },
}

/// `x FP32 [-1,4]; y INT64 [-1]`.
fn spec_list(specs: &[TensorSpec]) -> String {
    if specs.is_empty() {
        return "no inputs".into();
    }
    specs.iter().map(TensorSpec::to_string).collect::<Vec<_>>().join("; ")
}

/// Roll out `version` of `name`.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub name: String,
    pub version: i64,
    pub strategy: Strategy,
    /// Percent of traffic for a canary (ignored otherwise).
    pub weight: u32,
    pub limits: RolloutLimits,
    /// Deploy even when the candidate's inputs differ from the stable version's.
    pub force: bool,
    pub reason: Option<String>,
}

/// Overrides of the policy's rollout limits (`kairo deploy --max-error-rate ...`).
#[derive(Debug, Clone, Default)]
pub struct LimitOverrides {
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub min_requests: Option<u64>,
    pub window_s: Option<u64>,
}

/// The limits a rollout runs under: the overrides over the policy's, over the defaults.
pub fn limits(policy: Option<&RolloutLimits>, o: &LimitOverrides) -> Result<RolloutLimits, Refusal> {
    let mut l = policy.cloned().unwrap_or_default();
    if let Some(v) = o.max_error_rate {
        if !(0.0..=1.0).contains(&v) {
            return Err(Refusal::ErrorRate(v));
        }
        l.max_error_rate = v;
    }
    if let Some(v) = o.max_p99_ms {
        if v.is_nan() || v <= 0.0 {
            return Err(Refusal::P99(v));
        }
        l.max_p99_ms = v;
    }
    if let Some(v) = o.min_requests {
        l.min_requests = v;
    }
    if let Some(v) = o.window_s {
        l.window_s = v;
    }
    Ok(l)
}

/// The inputs of the candidate and of the current stable version, as their signatures say.
pub struct Inputs<'a> {
    pub candidate: &'a Signature,
    pub stable: Option<&'a Signature>,
}

/// The change a deploy makes, or why it is refused. A direct deploy replaces whatever runs; a
/// canary or shadow needs a stable version beside it, must differ from it, and (unless forced)
/// must take the same inputs.
pub fn plan_deploy(
    current: Option<&Deployment>,
    req: &DeployRequest,
    inputs: &Inputs,
) -> Result<DeploymentChange, Refusal> {
    let version = req.version;
    if req.strategy == Strategy::Canary && !(1..=99).contains(&req.weight) {
        return Err(Refusal::Weight(req.weight));
    }
    let current = match (current, req.strategy) {
        (_, Strategy::Direct) => {
            return Ok(DeploymentChange {
                name: req.name.clone(),
                stable_version: version,
                candidate_version: None,
                strategy: Strategy::Direct,
                weight: 0,
                limits: req.limits.clone(),
                kind: EventKind::DeploymentCreated,
                reason: req.reason.clone().unwrap_or_else(|| format!("direct deploy of version {version}")),
            })
        }
        (None, _) => return Err(Refusal::FirstNotDirect { name: req.name.clone() }),
        (Some(d), _) => d,
    };
    if current.stable_version == version {
        return Err(Refusal::AlreadyStable { name: req.name.clone(), version });
    }
    if !req.force {
        if let Some(stable) = inputs.stable {
            if stable.inputs != inputs.candidate.inputs {
                return Err(Refusal::InputsDiffer {
                    version,
                    stable: current.stable_version,
                    candidate_inputs: inputs.candidate.inputs.clone(),
                    stable_inputs: stable.inputs.clone(),
                });
            }
        }
    }
    Ok(DeploymentChange {
        name: req.name.clone(),
        stable_version: current.stable_version,
        candidate_version: Some(version),
        strategy: req.strategy,
        weight: if req.strategy == Strategy::Canary { req.weight } else { 0 },
        limits: req.limits.clone(),
        kind: EventKind::DeploymentStarted,
        reason: req.reason.clone().unwrap_or_else(|| format!("{} of version {version}", req.strategy.as_str())),
    })
}

/// A manual rollback: drop the candidate if there is one, else return to the last other
/// version that served 100% (`revisions`, oldest first). Returns the change and what it does.
pub fn plan_rollback(
    name: &str,
    current: Option<&Deployment>,
    revisions: &[i64],
    reason: Option<String>,
) -> Result<(DeploymentChange, String), Refusal> {
    let d = current.ok_or_else(|| Refusal::NotDeployed { name: name.to_string() })?;
    let (stable, what) = match d.candidate_version {
        Some(c) => (d.stable_version, format!("dropped candidate version {c}")),
        None => {
            let previous = revisions
                .iter()
                .rev()
                .find(|v| **v != d.stable_version)
                .copied()
                .ok_or_else(|| Refusal::NoEarlierVersion { name: name.to_string() })?;
            (previous, format!("returned from version {} to version {previous}", d.stable_version))
        }
    };
    let change = DeploymentChange {
        name: name.to_string(),
        stable_version: stable,
        candidate_version: None,
        strategy: Strategy::Direct,
        weight: 0,
        limits: d.limits.clone(),
        kind: EventKind::DeploymentRolledBack,
        reason: reason.unwrap_or_else(|| format!("manual rollback: {what}")),
    };
    Ok((change, what))
}

/// How the candidate has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health {
    pub requests: u64,
    pub errors: u64,
    pub p99_ms: f64,
}

/// The rollout guard's verdict on a candidate. `now_ms` is the clock, passed in so the
/// decision is a function of its inputs.
pub fn judge(d: &Deployment, health: Health, now_ms: i64) -> Option<DeploymentChange> {
    let candidate = d.candidate_version?;
    let l = &d.limits;
    let Health { requests: total, errors, p99_ms } = health;
    let judged = total >= l.min_requests && total > 0;
    let mut breach = None;
    if judged {
        let rate = errors as f64 / total as f64;
        if rate > l.max_error_rate {
            breach = Some(format!("candidate error rate {rate:.3} > {} over {total} requests", l.max_error_rate));
        } else if p99_ms > l.max_p99_ms {
            breach = Some(format!("candidate p99 {p99_ms:.3} ms > {} ms over {total} requests", l.max_p99_ms));
        }
    }
    let back = |kind, stable, reason| DeploymentChange {
        name: d.name.clone(),
        stable_version: stable,
        candidate_version: None,
        strategy: Strategy::Direct,
        weight: 0,
        limits: l.clone(),
        kind,
        reason,
    };
    if let Some(reason) = breach {
        return Some(back(
            EventKind::DeploymentRolledBack,
            d.stable_version,
            format!("automatic rollback of version {candidate}: {reason}"),
        ));
    }
    let window_ms = i64::try_from(l.window_s).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
    if d.strategy == Strategy::Canary && now_ms.saturating_sub(d.started_ms) >= window_ms && total >= l.min_requests {
        return Some(back(
            EventKind::DeploymentCompleted,
            candidate,
            format!(
                "canary of version {candidate} healthy for {} s ({total} requests, {errors} errors, p99 {p99_ms:.3} ms)",
                l.window_s
            ),
        ));
    }
    None
}

/// A server could not load `version`: the deployment returns to `keep`, which still serves.
pub fn after_failed_load(d: &Deployment, version: i64, error: &str, keep: i64) -> DeploymentChange {
    DeploymentChange {
        name: d.name.clone(),
        stable_version: keep,
        candidate_version: None,
        strategy: Strategy::Direct,
        weight: 0,
        limits: d.limits.clone(),
        kind: EventKind::DeploymentRolledBack,
        reason: format!("version {version} failed to load: {error}"),
    }
}

/// Deploy: the version must exist and load in the serving runtime here before any server is
/// asked to serve it; the change commits with its event.
pub async fn deploy(project: &Project, md: &Metadata, req: &DeployRequest, actor: &str) -> Result<Deployment> {
    md.registered_model(&req.name).await?;
    let current = md.deployment(&req.name).await?;
    let artifact = artifact_of(md, &req.name, req.version).await?;
    let bytes = version_bytes(project, &artifact)?;
    drop(load_model(&bytes, &format!("model '{}' version {}", req.name, req.version))?);
    let stable = match &current {
        Some(d) if req.strategy != Strategy::Direct && d.stable_version != req.version && !req.force => {
            Some(artifact_of(md, &req.name, d.stable_version).await?.signature)
        }
        _ => None,
    };
    let change =
        plan_deploy(current.as_ref(), req, &Inputs { candidate: &artifact.signature, stable: stable.as_ref() })?;
    md.change_deployment(&change, current.as_ref().map(|d| d.generation), actor)
        .await?
        .ok_or_else(|| Refusal::Concurrent { name: req.name.clone() }.into())
}

/// A manual rollback; returns the deployment after it and what it did.
pub async fn rollback(md: &Metadata, name: &str, reason: Option<String>, actor: &str) -> Result<(Deployment, String)> {
    let current = md.deployment(name).await?;
    let revisions = match &current {
        Some(d) if d.candidate_version.is_none() => md.deployment_revisions(name).await?,
        _ => Vec::new(),
    };
    let (change, what) = plan_rollback(name, current.as_ref(), &revisions, reason)?;
    let generation = current.as_ref().map(|d| d.generation);
    let d = md
        .change_deployment(&change, generation, actor)
        .await?
        .ok_or_else(|| RegistryError::from(Refusal::Concurrent { name: name.to_string() }))?;
    Ok((d, what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairo_core::signature::DType;

    fn deployment(stable: i64, candidate: Option<(i64, Strategy, u32)>) -> Deployment {
        Deployment {
            name: "m".into(),
            stable_version: stable,
            candidate_version: candidate.map(|c| c.0),
            strategy: candidate.map(|c| c.1).unwrap_or(Strategy::Direct),
            weight: candidate.map(|c| c.2).unwrap_or(0),
            limits: RolloutLimits { max_error_rate: 0.1, max_p99_ms: 50.0, min_requests: 10, window_s: 60 },
            started_ms: 1_000_000,
            generation: 4,
            updated_ms: 1_000_000,
        }
    }

    fn request(version: i64, strategy: Strategy, weight: u32) -> DeployRequest {
        DeployRequest {
            name: "m".into(),
            version,
            strategy,
            weight,
            limits: RolloutLimits::default(),
            force: false,
            reason: None,
        }
    }

    fn sig(inputs: &[(&str, DType)]) -> Signature {
        let spec =
            |(name, dtype): &(&str, DType)| TensorSpec { name: name.to_string(), dtype: *dtype, shape: vec![-1, 1] };
        Signature { inputs: inputs.iter().map(spec).collect(), outputs: Vec::new() }
    }

    #[test]
    fn first_deploy_must_be_direct() {
        let same = sig(&[("x", DType::F32)]);
        let inputs = Inputs { candidate: &same, stable: None };
        for s in [Strategy::Canary, Strategy::Shadow] {
            assert_eq!(
                plan_deploy(None, &request(1, s, 10), &inputs).unwrap_err(),
                Refusal::FirstNotDirect { name: "m".into() }
            );
        }
        let c = plan_deploy(None, &request(1, Strategy::Direct, 10), &inputs).unwrap();
        assert_eq!((c.stable_version, c.candidate_version, c.weight), (1, None, 0));
        assert_eq!(c.kind, EventKind::DeploymentCreated);
        assert_eq!(c.reason, "direct deploy of version 1");
    }

    #[test]
    fn direct_deploy_replaces_stable_and_candidate() {
        let s = sig(&[]);
        let d = deployment(1, Some((2, Strategy::Canary, 10)));
        let c =
            plan_deploy(Some(&d), &request(3, Strategy::Direct, 0), &Inputs { candidate: &s, stable: None }).unwrap();
        assert_eq!((c.stable_version, c.candidate_version, c.strategy), (3, None, Strategy::Direct));
    }

    #[test]
    fn canary_and_shadow_start_beside_the_stable_version() {
        let s = sig(&[("x", DType::F32)]);
        let d = deployment(1, None);
        let inputs = Inputs { candidate: &s, stable: Some(&s) };
        let c = plan_deploy(Some(&d), &request(2, Strategy::Canary, 25), &inputs).unwrap();
        assert_eq!((c.stable_version, c.candidate_version, c.weight), (1, Some(2), 25));
        assert_eq!(c.kind, EventKind::DeploymentStarted);
        assert_eq!(c.reason, "canary of version 2");
        let c = plan_deploy(Some(&d), &request(2, Strategy::Shadow, 25), &inputs).unwrap();
        assert_eq!((c.candidate_version, c.weight, c.strategy), (Some(2), 0, Strategy::Shadow));
    }

    #[test]
    fn canary_weight_is_one_to_ninety_nine() {
        let s = sig(&[]);
        let d = deployment(1, None);
        let inputs = Inputs { candidate: &s, stable: Some(&s) };
        for w in [0, 100, 1000] {
            assert_eq!(
                plan_deploy(Some(&d), &request(2, Strategy::Canary, w), &inputs).unwrap_err(),
                Refusal::Weight(w)
            );
        }
        for w in [1, 99] {
            assert!(plan_deploy(Some(&d), &request(2, Strategy::Canary, w), &inputs).is_ok());
        }
        // A shadow takes no share of traffic: its weight is not judged.
        assert!(plan_deploy(Some(&d), &request(2, Strategy::Shadow, 0), &inputs).is_ok());
    }

    #[test]
    fn the_stable_version_is_not_its_own_candidate() {
        let s = sig(&[]);
        let d = deployment(3, None);
        let err = plan_deploy(Some(&d), &request(3, Strategy::Canary, 10), &Inputs { candidate: &s, stable: Some(&s) })
            .unwrap_err();
        assert_eq!(err, Refusal::AlreadyStable { name: "m".into(), version: 3 });
    }

    #[test]
    fn inputs_must_match_unless_forced() {
        let a = sig(&[("x", DType::F32)]);
        let b = sig(&[("x", DType::F64)]);
        let d = deployment(1, None);
        let inputs = Inputs { candidate: &b, stable: Some(&a) };
        let err = plan_deploy(Some(&d), &request(2, Strategy::Canary, 10), &inputs).unwrap_err();
        assert!(matches!(err, Refusal::InputsDiffer { version: 2, stable: 1, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "version 2 takes different inputs than stable version 1 (x FP64 [-1,1] vs x FP32 [-1,1]); \
             use --force to deploy anyway"
        );
        let mut forced = request(2, Strategy::Canary, 10);
        forced.force = true;
        assert!(plan_deploy(Some(&d), &forced, &inputs).is_ok());
    }

    #[test]
    fn rollback_drops_a_candidate_first() {
        let d = deployment(1, Some((2, Strategy::Canary, 10)));
        let (c, what) = plan_rollback("m", Some(&d), &[1], None).unwrap();
        assert_eq!((c.stable_version, c.candidate_version), (1, None));
        assert_eq!(c.kind, EventKind::DeploymentRolledBack);
        assert_eq!(what, "dropped candidate version 2");
        assert_eq!(c.reason, "manual rollback: dropped candidate version 2");
    }

    #[test]
    fn rollback_returns_to_the_last_other_version_that_served() {
        let d = deployment(3, None);
        let (c, what) = plan_rollback("m", Some(&d), &[1, 2, 3], Some("bad".into())).unwrap();
        assert_eq!(c.stable_version, 2);
        assert_eq!(what, "returned from version 3 to version 2");
        assert_eq!(c.reason, "bad");
        // 3 → 2 → 3 again: the previous is 2, not 3.
        let (c, _) = plan_rollback("m", Some(&d), &[2, 3, 2, 3], None).unwrap();
        assert_eq!(c.stable_version, 2);
    }

    #[test]
    fn rollback_refusals() {
        assert_eq!(plan_rollback("m", None, &[], None).unwrap_err(), Refusal::NotDeployed { name: "m".into() });
        let d = deployment(1, None);
        assert_eq!(
            plan_rollback("m", Some(&d), &[1], None).unwrap_err(),
            Refusal::NoEarlierVersion { name: "m".into() }
        );
    }

    #[test]
    fn guard_waits_until_enough_requests() {
        let d = deployment(1, Some((2, Strategy::Canary, 10)));
        let h = Health { requests: 9, errors: 9, p99_ms: 1e9 };
        assert_eq!(judge(&d, h, d.started_ms + 10_000_000), None);
        assert_eq!(judge(&d, Health::default(), d.started_ms + 10_000_000), None);
    }

    #[test]
    fn guard_rolls_back_on_error_rate_then_latency() {
        let d = deployment(1, Some((2, Strategy::Canary, 10)));
        let c = judge(&d, Health { requests: 10, errors: 2, p99_ms: 1.0 }, d.started_ms).unwrap();
        assert_eq!((c.stable_version, c.candidate_version, c.kind), (1, None, EventKind::DeploymentRolledBack));
        assert!(c.reason.contains("error rate 0.200 > 0.1"), "{}", c.reason);
        let c = judge(&d, Health { requests: 10, errors: 1, p99_ms: 51.0 }, d.started_ms).unwrap();
        assert!(c.reason.contains("p99 51.000 ms > 50 ms"), "{}", c.reason);
        // At the limits exactly, nothing is breached.
        assert_eq!(judge(&d, Health { requests: 10, errors: 1, p99_ms: 50.0 }, d.started_ms), None);
    }

    #[test]
    fn guard_completes_a_healthy_canary_after_its_window() {
        let d = deployment(1, Some((2, Strategy::Canary, 10)));
        let healthy = Health { requests: 10, errors: 0, p99_ms: 3.0 };
        assert_eq!(judge(&d, healthy, d.started_ms + 59_999), None);
        let c = judge(&d, healthy, d.started_ms + 60_000).unwrap();
        assert_eq!((c.stable_version, c.candidate_version, c.kind), (2, None, EventKind::DeploymentCompleted));
    }

    #[test]
    fn a_shadow_never_completes_and_a_stable_deployment_is_not_judged() {
        let d = deployment(1, Some((2, Strategy::Shadow, 0)));
        assert_eq!(judge(&d, Health { requests: 1000, errors: 0, p99_ms: 1.0 }, i64::MAX), None);
        let c = judge(&d, Health { requests: 1000, errors: 500, p99_ms: 1.0 }, d.started_ms).unwrap();
        assert_eq!(c.kind, EventKind::DeploymentRolledBack);
        let d = deployment(1, None);
        assert_eq!(judge(&d, Health { requests: 1000, errors: 1000, p99_ms: 1e9 }, i64::MAX), None);
    }

    #[test]
    fn a_failed_load_returns_to_the_version_that_still_serves() {
        let d = deployment(1, Some((2, Strategy::Canary, 10)));
        let c = after_failed_load(&d, 2, "unsupported operator", 1);
        assert_eq!((c.stable_version, c.candidate_version, c.kind), (1, None, EventKind::DeploymentRolledBack));
        assert_eq!(c.reason, "version 2 failed to load: unsupported operator");
    }

    #[test]
    fn limit_overrides_are_checked() {
        let base = RolloutLimits::default();
        let o = LimitOverrides { max_error_rate: Some(1.5), ..Default::default() };
        assert_eq!(limits(Some(&base), &o).unwrap_err(), Refusal::ErrorRate(1.5));
        let o = LimitOverrides { max_p99_ms: Some(0.0), ..Default::default() };
        assert_eq!(limits(None, &o).unwrap_err(), Refusal::P99(0.0));
        let o = LimitOverrides { min_requests: Some(5), window_s: Some(7), ..Default::default() };
        let l = limits(None, &o).unwrap();
        assert_eq!((l.min_requests, l.window_s, l.max_error_rate), (5, 7, 0.05));
    }
}
