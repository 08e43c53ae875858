//! Who acted, as events, runs and promotions record it. A person is their user name (or
//! `KAIRO_ACTOR`); Kairo's own automatic actors have fixed names here, so the KPIs can tell
//! work done by automation from work done by hand with one rule.

/// `kairo server`'s monitor schedule.
pub const MONITOR_SCHEDULER: &str = "kairo-monitor";

/// `kairo serve`'s rollout guard: completing a healthy canary, rolling back a breach, returning
/// from a version that failed to load.
pub const ROLLOUT_GUARD: &str = "kairo-serve";

/// The closed loop acting for an automation of `kairo.yaml`.
pub fn automation(name: &str) -> String {
    format!("automation:{name}")
}

/// Whether an actor is Kairo acting by itself rather than a person.
pub fn is_automated(actor: &str) -> bool {
    actor.starts_with("automation:") || actor == MONITOR_SCHEDULER || actor == ROLLOUT_GUARD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_actors() {
        assert!(is_automated(&automation("retrain-on-drift")));
        assert!(is_automated(MONITOR_SCHEDULER) && is_automated(ROLLOUT_GUARD));
        assert!(!is_automated("alice") && !is_automated("automation") && !is_automated("ci-bot"));
    }
}
