//! What each served model name routes to, and how that changes: a poller reads the registry
//! (deployment, alias or pinned version), loads new versions beside the old ones, and swaps
//! the routing table atomically. Requests take an `Arc` of the routing when they start, so
//! in-flight requests finish on the version they began with.
//!
//! The rollout guard lives here too: it watches the candidate's error rate and p99, rolls a
//! canary or shadow back when they exceed the deployment's limits, and gives a healthy canary
//! 100% when its window ends.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kairo_core::serving::{Deployment, Strategy};
use kairo_data::Project;
use kairo_registry::{ModelRef, RegistryError};
use kairo_runtime::Model;
use kairo_store::{Metadata, StoreError};
use serde_json::{json, Value};

/// Why an endpoint could not start, follow the registry, or load a version.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("model '{0}' is named twice")]
    NamedTwice(String),
    #[error("no registered model '{0}' (see `kairo models ls`)")]
    NotRegistered(String),
    #[error("model '{name}' has no alias '{alias}'")]
    NoAlias { name: String, alias: String },
    /// Reading the registry failed.
    #[error("model '{name}': {source}")]
    Store { name: String, source: StoreError },
    /// The registry refused: no such version, no version at all, no artifact.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The version's bytes could not be read (missing or corrupt in the store).
    #[error("model '{name}' version {version} cannot be loaded: {source}")]
    Bytes { name: String, version: i64, source: RegistryError },
    /// The loading task itself failed (a panic in the runtime).
    #[error("model '{name}' version {version}: {message}")]
    Task { name: String, version: i64, message: String },
    /// The model's privacy policy cannot be applied to this version (a missing key, an
    /// unknown field): nothing would be logged safely, so the version is not served.
    #[error("model '{name}' version {version}: {message}")]
    Privacy { name: String, version: i64, message: String },
    /// Writing the guard's decision failed.
    #[error("model '{name}': the deployment could not be changed: {source}")]
    Deployment { name: String, source: StoreError },
}

/// One loaded version.
pub struct Loaded {
    pub name: String,
    pub version: i64,
    pub model: Model,
    /// OIP model metadata (`GET /v2/models/{name}/versions/{v}`).
    pub metadata: Value,
    /// Contribution data, for models `kairo train` wrote.
    pub explainer: Option<kairo_runtime::explain::Explainer>,
    /// The model's privacy policy for the prediction log, resolved for this version.
    pub redactor: Option<Arc<crate::privacy::Redactor>>,
}

/// Which arm of a deployment answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arm {
    Stable,
    Canary,
    Shadow,
    /// A request that named its version.
    Pinned,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Stable => "stable",
            Arm::Canary => "canary",
            Arm::Shadow => "shadow",
            Arm::Pinned => "pinned",
        }
    }
}

/// What the endpoint follows in the registry.
#[derive(Debug, Clone, PartialEq)]
pub enum Follow {
    /// `kairo deploy`'s deployment; before there is one, the `champion` alias, else the latest version.
    Deployment,
    Alias(String),
    Pinned(i64),
}

/// A candidate beside the stable version.
#[derive(Clone)]
pub struct Candidate {
    pub loaded: Arc<Loaded>,
    pub strategy: Strategy,
    pub weight: u32,
}

/// The routing of one endpoint at one moment; immutable, replaced whole.
pub struct Routing {
    pub stable: Arc<Loaded>,
    pub candidate: Option<Candidate>,
    pub deployment: Option<Deployment>,
}

/// Outcomes of the candidate since it started here, for the rollout guard (which judges the
/// sum over every replica: each publishes these).
#[derive(Default)]
struct CandidateStats {
    version: Option<i64>,
    /// The deployment generation these count for (set by the guard).
    generation: Option<i64>,
    total: u64,
    errors: u64,
    latency: kairo_core::latency::Histogram,
}

pub struct Endpoint {
    pub name: String,
    pub follow: Follow,
    routing: RwLock<Arc<Routing>>,
    stats: Mutex<CandidateStats>,
    counter: AtomicU64,
}

impl Endpoint {
    pub fn routing(&self) -> Arc<Routing> {
        match self.routing.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn swap(&self, routing: Routing) {
        let mut g = match self.routing.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // A new candidate or deployment generation counts from zero, from this moment: reset
        // under the routing lock, so no answer of the new routing is counted for the old one.
        let generation = routing.deployment.as_ref().map(|d| d.generation);
        let version = routing.candidate.as_ref().map(|c| c.loaded.version);
        {
            let mut s = lock(&self.stats);
            if s.generation != generation || s.version != version {
                *s = CandidateStats { version, generation, ..Default::default() };
            }
        }
        *g = Arc::new(routing);
    }

    /// Pick the arm for a request: canary by weight (sticky by `key` when given), and the
    /// shadow to mirror to, if any.
    pub fn route(&self, routing: &Routing, key: Option<&str>) -> (Arc<Loaded>, Arm, Option<Arc<Loaded>>) {
        match &routing.candidate {
            Some(c) if c.strategy == Strategy::Canary => {
                let bucket = match key {
                    Some(k) => {
                        let h = blake3::hash(k.as_bytes());
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&h.as_bytes()[..8]);
                        u64::from_le_bytes(b) % 100
                    }
                    // An even spread without randomness: 37 is coprime with 100.
                    None => (self.counter.fetch_add(1, Ordering::Relaxed) * 37) % 100,
                };
                if bucket < u64::from(c.weight) {
                    (c.loaded.clone(), Arm::Canary, None)
                } else {
                    (routing.stable.clone(), Arm::Stable, None)
                }
            }
            Some(c) if c.strategy == Strategy::Shadow => (routing.stable.clone(), Arm::Stable, Some(c.loaded.clone())),
            _ => (routing.stable.clone(), Arm::Stable, None),
        }
    }

    /// Record a candidate-arm outcome (canary or shadow) for the guard.
    pub fn observe_candidate(&self, version: i64, ok: bool, latency: Duration) {
        let mut s = match self.stats.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if s.version != Some(version) {
            // An answer of a version this routing no longer has as its candidate.
            return;
        }
        s.total += 1;
        if !ok {
            s.errors += 1;
        }
        s.latency.record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// A version this endpoint serves right now (stable or candidate).
    pub fn loaded_version(&self, version: i64) -> Option<Arc<Loaded>> {
        let r = self.routing();
        if r.stable.version == version {
            return Some(r.stable.clone());
        }
        r.candidate.as_ref().filter(|c| c.loaded.version == version).map(|c| c.loaded.clone())
    }
}

/// Every endpoint of this server, the loaded-version cache and the registry handles.
pub struct Endpoints {
    pub map: HashMap<String, Arc<Endpoint>>,
    project: Project,
    md: Metadata,
    cache: Mutex<HashMap<(String, i64), Arc<Loaded>>>,
    /// Versions that failed to load, so a bad version is reported once, not every poll.
    failed: Mutex<HashSet<(String, i64)>>,
    actor: String,
    /// This process among the replicas sharing the database (random per start).
    replica: String,
    /// How long this replica holds a deployment's guard lease without renewing it (three poll
    /// intervals, at least 2 s).
    lease_ms: std::sync::atomic::AtomicI64,
}

/// The registry's current wish for an endpoint.
#[derive(Debug, Clone, PartialEq)]
struct Desired {
    stable: i64,
    candidate: Option<(i64, Strategy, u32)>,
    deployment: Option<Deployment>,
}

impl Endpoints {
    /// This process's id among the replicas sharing the database.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Resolve and load every requested model; any failure here stops the server from starting.
    pub async fn start(
        project: Project,
        md: Metadata,
        refs: &[ModelRef],
        actor: String,
    ) -> Result<Endpoints, EndpointError> {
        let mut eps = Endpoints {
            map: HashMap::new(),
            project,
            md,
            cache: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashSet::new()),
            actor,
            replica: kairo_core::run::new_run_id(),
            lease_ms: std::sync::atomic::AtomicI64::new(10_000),
        };
        for r in refs {
            let follow = match r {
                ModelRef::Name(_) => Follow::Deployment,
                ModelRef::Alias(_, a) => Follow::Alias(a.clone()),
                ModelRef::Version(_, v) => Follow::Pinned(*v),
            };
            let name = r.name().to_string();
            if eps.map.contains_key(&name) {
                return Err(EndpointError::NamedTwice(name));
            }
            match eps.md.registered_model(&name).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => return Err(EndpointError::NotRegistered(name)),
                Err(source) => return Err(EndpointError::Store { name, source }),
            }
            let desired = eps.desired(&name, &follow).await?;
            let stable = eps.load(&name, desired.stable).await?;
            let candidate = match desired.candidate {
                Some((v, strategy, weight)) => match eps.load(&name, v).await {
                    Ok(loaded) => Some(Candidate { loaded, strategy, weight }),
                    Err(e) => {
                        tracing::warn!(model = %name, error = %e, "the candidate did not load; serving without it");
                        None
                    }
                },
                None => None,
            };
            let routing = Routing { stable, candidate, deployment: desired.deployment };
            let stats = CandidateStats {
                version: routing.candidate.as_ref().map(|c| c.loaded.version),
                generation: routing.deployment.as_ref().map(|d| d.generation),
                ..Default::default()
            };
            eps.map.insert(
                name.clone(),
                Arc::new(Endpoint {
                    name,
                    follow,
                    routing: RwLock::new(Arc::new(routing)),
                    stats: Mutex::new(stats),
                    counter: AtomicU64::new(0),
                }),
            );
        }
        Ok(eps)
    }

    async fn desired(&self, name: &str, follow: &Follow) -> Result<Desired, EndpointError> {
        let err = |source: StoreError| EndpointError::Store { name: name.to_string(), source };
        match follow {
            Follow::Pinned(v) => Ok(Desired { stable: *v, candidate: None, deployment: None }),
            Follow::Alias(a) => {
                let v = self
                    .md
                    .alias_version(name, a)
                    .await
                    .map_err(err)?
                    .ok_or_else(|| EndpointError::NoAlias { name: name.to_string(), alias: a.clone() })?;
                Ok(Desired { stable: v, candidate: None, deployment: None })
            }
            Follow::Deployment => {
                if let Some(d) = self.md.deployment(name).await.map_err(err)? {
                    let candidate = d.candidate_version.map(|v| (v, d.strategy, d.weight));
                    return Ok(Desired { stable: d.stable_version, candidate, deployment: Some(d) });
                }
                let v = ModelRef::Alias(name.into(), "champion".into()).resolve(&self.md).await;
                let v = match v {
                    Ok(v) => v,
                    Err(_) => ModelRef::Name(name.into()).resolve(&self.md).await?,
                };
                Ok(Desired { stable: v, candidate: None, deployment: None })
            }
        }
    }

    /// Load a version (or reuse it): bytes checked against their hash, model prepared off the
    /// async threads.
    async fn load(&self, name: &str, version: i64) -> Result<Arc<Loaded>, EndpointError> {
        if let Some(l) = lock(&self.cache).get(&(name.to_string(), version)) {
            return Ok(l.clone());
        }
        let artifact = kairo_registry::artifact_of(&self.md, name, version).await?;
        let bytes = kairo_registry::version_bytes(&self.project, &artifact).map_err(|source| EndpointError::Bytes {
            name: name.to_string(),
            version,
            source,
        })?;
        let label = format!("model '{name}' version {version}");
        let model = tokio::task::spawn_blocking(move || kairo_registry::load_model(&bytes, &label))
            .await
            .map_err(|e| EndpointError::Task { name: name.to_string(), version, message: e.to_string() })??;
        let metadata = metadata_json(name, version, &model);
        let profile = artifact.profile.as_ref().and_then(|p| p.current());
        // Explanation data that does not hold together is ignored: the model serves, without
        // contributions.
        let explainer = kairo_registry::profile::explainer(&model, profile);
        // kairo.yaml as it is now: a policy edited since the start applies to the next version loaded.
        let config = self.project.current_config().unwrap_or_else(|_| self.project.config().clone());
        let (spec, key) = kairo_data::Project::privacy(&config, name);
        let redactor = crate::privacy::Redactor::compile(name, &spec, model.signature(), profile, key)
            .map_err(|message| EndpointError::Privacy { name: name.to_string(), version, message })?;
        let redactor = redactor.map(Arc::new);
        let loaded = Arc::new(Loaded { name: name.to_string(), version, model, metadata, explainer, redactor });
        lock(&self.cache).insert((name.to_string(), version), loaded.clone());
        Ok(loaded)
    }

    /// One reconciliation pass over every endpoint: follow registry changes, judge candidates.
    pub async fn reconcile(&self) {
        for ep in self.map.values() {
            if let Err(e) = self.reconcile_one(ep).await {
                tracing::warn!(model = %ep.name, error = %e, "cannot follow the registry; still serving what was loaded");
            }
        }
        // Versions no endpoint serves any more are dropped from the cache.
        let live: HashSet<(String, i64)> = self
            .map
            .values()
            .flat_map(|ep| {
                let r = ep.routing();
                let mut v = vec![(ep.name.clone(), r.stable.version)];
                if let Some(c) = &r.candidate {
                    v.push((ep.name.clone(), c.loaded.version));
                }
                v
            })
            .collect();
        lock(&self.cache).retain(|k, _| live.contains(k));
    }

    async fn reconcile_one(&self, ep: &Endpoint) -> Result<(), EndpointError> {
        let desired = self.desired(&ep.name, &ep.follow).await?;
        let current = ep.routing();
        let unchanged = current.stable.version == desired.stable
            && current.candidate.as_ref().map(|c| (c.loaded.version, c.strategy, c.weight)) == desired.candidate;
        if unchanged {
            if current.deployment != desired.deployment {
                ep.swap(Routing {
                    stable: current.stable.clone(),
                    candidate: current.candidate.clone(),
                    deployment: desired.deployment,
                });
            }
            return self.guard(ep).await;
        }
        let stable = if current.stable.version == desired.stable {
            current.stable.clone()
        } else {
            match self.load(&ep.name, desired.stable).await {
                Ok(l) => l,
                Err(e) => {
                    self.load_failed(ep, desired.stable, &e, &desired, current.stable.version).await;
                    return Ok(());
                }
            }
        };
        let candidate = match desired.candidate {
            None => None,
            Some((v, strategy, weight)) => match self.load(&ep.name, v).await {
                Ok(loaded) => Some(Candidate { loaded, strategy, weight }),
                Err(e) => {
                    self.load_failed(ep, v, &e, &desired, desired.stable).await;
                    None
                }
            },
        };
        let from = current.stable.version;
        ep.swap(Routing { stable, candidate, deployment: desired.deployment });
        if from != desired.stable {
            tracing::info!(model = %ep.name, version = desired.stable, was = from, "now serving a new version");
        }
        Ok(())
    }

    /// A version did not load: the old one keeps serving, the failure is an event, and a
    /// deployment that asked for it is returned to `keep`.
    async fn load_failed(&self, ep: &Endpoint, version: i64, error: &EndpointError, desired: &Desired, keep: i64) {
        let error = error.to_string();
        let error = error.as_str();
        let first = lock(&self.failed).insert((ep.name.clone(), version));
        if first {
            tracing::warn!(
                model = %ep.name,
                version,
                error,
                serving = ep.routing().stable.version,
                "a version did not load; still serving the old one"
            );
            let _ = self.md.record_deployment_failure(&ep.name, version, error, &self.actor).await;
        }
        if let Some(d) = &desired.deployment {
            let change = kairo_registry::rollout::after_failed_load(d, version, error, keep);
            let _ = self.md.change_deployment(&change, Some(d.generation), &self.actor).await;
        }
    }

    /// Publish this replica's counts of the candidate; the replica holding the deployment's
    /// lease judges the candidate on every replica's counts against its limits, once, and the
    /// others follow the deployment the registry then holds.
    async fn guard(&self, ep: &Endpoint) -> Result<(), EndpointError> {
        let routing = ep.routing();
        let (Some(c), Some(d)) = (&routing.candidate, &routing.deployment) else { return Ok(()) };
        let mine = {
            let s = lock(&ep.stats);
            if s.version != Some(c.loaded.version) || s.generation != Some(d.generation) {
                // Counts of another routing (a swap is under way): nothing to publish yet.
                return Ok(());
            }
            kairo_store::replicas::CandidateCounts {
                requests: i64::try_from(s.total).unwrap_or(i64::MAX),
                errors: i64::try_from(s.errors).unwrap_or(i64::MAX),
                latency: s.latency.clone(),
            }
        };
        let store = |source| EndpointError::Deployment { name: ep.name.clone(), source };
        self.md
            .publish_candidate_counts(&ep.name, d.generation, &self.replica, c.loaded.version, &mine)
            .await
            .map_err(store)?;
        if !self
            .md
            .acquire_lease(&format!("rollout:{}", ep.name), &self.replica, self.lease_ms.load(Ordering::Relaxed))
            .await
            .map_err(store)?
        {
            return Ok(());
        }
        let (all, _replicas) = self.md.candidate_counts(&ep.name, d.generation).await.map_err(store)?;
        let health = kairo_registry::rollout::Health {
            requests: u64::try_from(all.requests).unwrap_or(0),
            errors: u64::try_from(all.errors).unwrap_or(0),
            p99_ms: all.latency.quantile_ms(0.99).unwrap_or(0.0),
        };
        let Some(change) = kairo_registry::rollout::judge(d, health, kairo_core::time::now_millis()) else {
            return Ok(());
        };
        let applied = self
            .md
            .change_deployment(&change, Some(d.generation), &self.actor)
            .await
            .map_err(|source| EndpointError::Deployment { name: ep.name.clone(), source })?;
        if applied.is_some() {
            tracing::info!(model = %ep.name, reason = %change.reason, "deployment changed");
            // Apply at once rather than at the next poll.
            Box::pin(self.reconcile_one(ep)).await?;
        }
        Ok(())
    }

    /// Reconcile every `interval` until the process ends.
    pub fn spawn_poller(self: &Arc<Self>, interval: Duration) {
        let lease = i64::try_from(interval.as_millis().saturating_mul(3)).unwrap_or(i64::MAX).max(2_000);
        self.lease_ms.store(lease, Ordering::Relaxed);
        let eps = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                eps.reconcile().await;
            }
        });
    }

    pub fn md(&self) -> &Metadata {
        &self.md
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// OIP model metadata.
fn metadata_json(name: &str, version: i64, model: &Model) -> Value {
    let spec =
        |s: &kairo_runtime::TensorSpec| json!({"name": s.name, "datatype": s.dtype.oip_name(), "shape": s.shape});
    let sig = model.signature();
    json!({
        "name": name,
        "versions": [version.to_string()],
        "platform": "onnx_onnxv1",
        "inputs": sig.inputs.iter().map(spec).collect::<Vec<_>>(),
        "outputs": sig.outputs.iter().map(spec).collect::<Vec<_>>(),
    })
}
