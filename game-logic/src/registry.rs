//! The model registry's rules: which version serves, and what promoting or
//! rolling back changes.
//!
//! Every trained model is a version with a state. Exactly one version is the
//! *champion* (it serves on every replica); the others are *candidates*
//! (trained, not serving), *retired* (served once, replaced by a newer
//! champion) or *rolled back* (served once and taken back by an operator).
//! A champion remembers the version it replaced, so a rollback restores it.
//!
//! These functions only decide: each returns a [`RegistryPlan`] — the state
//! changes to write, and the champion the store must still have for the plan
//! to apply (two replicas or two operators acting at once: the second plan
//! finds a different champion and is refused, never half-applied).

use serde::{Deserialize, Serialize};

/// Where a model version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    /// Trained and judged; not serving.
    Candidate,
    /// Serving on every replica.
    Champion,
    /// Served once; a newer champion replaced it.
    Retired,
    /// Served once; an operator took it back.
    RolledBack,
}

impl ModelState {
    pub const ALL: [ModelState; 4] = [
        ModelState::Candidate,
        ModelState::Champion,
        ModelState::Retired,
        ModelState::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Candidate => "candidate",
            ModelState::Champion => "champion",
            ModelState::Retired => "retired",
            ModelState::RolledBack => "rolled_back",
        }
    }

    pub fn parse(s: &str) -> Option<ModelState> {
        ModelState::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// What the rules need to know of one registered version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub version: String,
    pub state: ModelState,
    /// The promotion gate passed it (base models an operator installed count as passed).
    pub gate_passed: bool,
    /// The champion this version replaced when it was promoted.
    pub replaced: Option<String>,
}

/// One version's change of state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub version: String,
    pub from: ModelState,
    pub to: ModelState,
    /// For a version becoming champion: the champion it replaces (`None`:
    /// leave the stored value as it is, as a rollback does).
    pub replaced: Option<Option<String>>,
}

/// What a promotion or rollback writes, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryPlan {
    /// The champion the store must still have (`None`: none) for the plan to apply.
    pub expected_champion: Option<String>,
    /// The champion once applied.
    pub champion: String,
    pub changes: Vec<StateChange>,
}

/// Why the registry refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RegistryRefusal {
    #[error("no model version {version} in the registry")]
    UnknownVersion { version: String },
    #[error("{version} is the champion already")]
    AlreadyChampion { version: String },
    #[error("the promotion gate refused {version} (force it to promote anyway)")]
    GateRefused { version: String },
    #[error("{version} was rolled back (force it to promote it again)")]
    WasRolledBack { version: String },
    #[error("no champion to roll back")]
    NoChampion,
    #[error("the champion {version} replaced no registered version: nothing to roll back to")]
    NothingToRollBackTo { version: String },
}

/// The serving version, if any.
pub fn champion(entries: &[ModelEntry]) -> Option<&ModelEntry> {
    entries.iter().find(|e| e.state == ModelState::Champion)
}

/// Makes `version` the champion; the current champion retires. A candidate
/// the gate refused, or a version that was rolled back, needs `force`.
pub fn promote(
    entries: &[ModelEntry],
    version: &str,
    force: bool,
) -> Result<RegistryPlan, RegistryRefusal> {
    let Some(target) = entries.iter().find(|e| e.version == version) else {
        return Err(RegistryRefusal::UnknownVersion {
            version: version.to_owned(),
        });
    };
    match target.state {
        ModelState::Champion => {
            return Err(RegistryRefusal::AlreadyChampion {
                version: version.to_owned(),
            });
        }
        ModelState::RolledBack if !force => {
            return Err(RegistryRefusal::WasRolledBack {
                version: version.to_owned(),
            });
        }
        ModelState::Candidate if !target.gate_passed && !force => {
            return Err(RegistryRefusal::GateRefused {
                version: version.to_owned(),
            });
        }
        _ => {}
    }
    let current = champion(entries);
    let mut changes = Vec::with_capacity(2);
    if let Some(c) = current {
        changes.push(StateChange {
            version: c.version.clone(),
            from: ModelState::Champion,
            to: ModelState::Retired,
            replaced: None,
        });
    }
    changes.push(StateChange {
        version: version.to_owned(),
        from: target.state,
        to: ModelState::Champion,
        replaced: Some(current.map(|c| c.version.clone())),
    });
    Ok(RegistryPlan {
        expected_champion: current.map(|c| c.version.clone()),
        champion: version.to_owned(),
        changes,
    })
}

/// Takes the champion back: it becomes rolled back and the version it
/// replaced serves again (a second rollback goes one further back).
pub fn rollback(entries: &[ModelEntry]) -> Result<RegistryPlan, RegistryRefusal> {
    let current = champion(entries).ok_or(RegistryRefusal::NoChampion)?;
    let previous = current
        .replaced
        .as_deref()
        .and_then(|v| entries.iter().find(|e| e.version == v))
        .filter(|e| e.state != ModelState::Champion)
        .ok_or_else(|| RegistryRefusal::NothingToRollBackTo {
            version: current.version.clone(),
        })?;
    Ok(RegistryPlan {
        expected_champion: Some(current.version.clone()),
        champion: previous.version.clone(),
        changes: vec![
            StateChange {
                version: current.version.clone(),
                from: ModelState::Champion,
                to: ModelState::RolledBack,
                replaced: None,
            },
            StateChange {
                version: previous.version.clone(),
                from: previous.state,
                to: ModelState::Champion,
                replaced: None,
            },
        ],
    })
}

/// A registry with no champion adopts the base model the operator
/// configured (registered as `base`): the plan makes it champion. `None`
/// when a champion exists or `base` is not registered.
pub fn adopt_base(entries: &[ModelEntry], base: &str) -> Option<RegistryPlan> {
    if champion(entries).is_some() {
        return None;
    }
    let target = entries.iter().find(|e| e.version == base)?;
    Some(RegistryPlan {
        expected_champion: None,
        champion: base.to_owned(),
        changes: vec![StateChange {
            version: base.to_owned(),
            from: target.state,
            to: ModelState::Champion,
            replaced: Some(None),
        }],
    })
}

/// The entries once `plan` is applied (what every store does, in memory:
/// the contract the store implementations are tested against). `None` if
/// the plan does not apply: the champion moved, or a change's version is
/// missing or not in its `from` state.
pub fn apply(entries: &[ModelEntry], plan: &RegistryPlan) -> Option<Vec<ModelEntry>> {
    if champion(entries).map(|c| c.version.as_str()) != plan.expected_champion.as_deref() {
        return None;
    }
    let mut out = entries.to_vec();
    for change in &plan.changes {
        let e = out.iter_mut().find(|e| e.version == change.version)?;
        if e.state != change.from {
            return None;
        }
        e.state = change.to;
        if let Some(r) = &change.replaced {
            e.replaced = r.clone();
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(v: &str, state: ModelState, gate_passed: bool) -> ModelEntry {
        ModelEntry {
            version: v.into(),
            state,
            gate_passed,
            replaced: None,
        }
    }

    fn champions(entries: &[ModelEntry]) -> usize {
        entries
            .iter()
            .filter(|e| e.state == ModelState::Champion)
            .count()
    }

    #[test]
    fn promoting_retires_the_champion_and_a_rollback_restores_it() {
        let base = vec![
            entry("base", ModelState::Candidate, true),
            entry("new", ModelState::Candidate, true),
        ];
        let adopted = apply(
            &base,
            &adopt_base(&base, "base").unwrap_or_else(|| panic!("expected a value")),
        )
        .unwrap_or_else(|| panic!("expected a value"));
        assert_eq!(
            champion(&adopted)
                .unwrap_or_else(|| panic!("expected a value"))
                .version,
            "base"
        );
        assert_eq!(adopt_base(&adopted, "new"), None, "a champion exists");
        let plan = promote(&adopted, "new", false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.expected_champion.as_deref(), Some("base"));
        let promoted = apply(&adopted, &plan).unwrap_or_else(|| panic!("expected a value"));
        assert_eq!(
            champion(&promoted)
                .unwrap_or_else(|| panic!("expected a value"))
                .version,
            "new"
        );
        assert_eq!(promoted[0].state, ModelState::Retired);
        assert_eq!(promoted[1].replaced.as_deref(), Some("base"));
        let back = apply(
            &promoted,
            &rollback(&promoted).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|| panic!("expected a value"));
        assert_eq!(
            champion(&back)
                .unwrap_or_else(|| panic!("expected a value"))
                .version,
            "base"
        );
        assert_eq!(back[1].state, ModelState::RolledBack);
        assert_eq!(
            rollback(&back),
            Err(RegistryRefusal::NothingToRollBackTo {
                version: "base".into()
            })
        );
        // A rolled-back version comes back only when forced.
        assert_eq!(
            promote(&back, "new", false),
            Err(RegistryRefusal::WasRolledBack {
                version: "new".into()
            })
        );
        assert!(promote(&back, "new", true).is_ok());
    }

    #[test]
    fn a_refused_candidate_needs_force_and_unknown_versions_are_refused() {
        let entries = vec![
            entry("base", ModelState::Champion, true),
            entry("bad", ModelState::Candidate, false),
        ];
        assert_eq!(
            promote(&entries, "bad", false),
            Err(RegistryRefusal::GateRefused {
                version: "bad".into()
            })
        );
        assert!(promote(&entries, "bad", true).is_ok());
        assert_eq!(
            promote(&entries, "nope", true),
            Err(RegistryRefusal::UnknownVersion {
                version: "nope".into()
            })
        );
        assert_eq!(
            promote(&entries, "base", true),
            Err(RegistryRefusal::AlreadyChampion {
                version: "base".into()
            })
        );
        assert_eq!(rollback(&[]), Err(RegistryRefusal::NoChampion));
    }

    #[test]
    fn a_plan_made_against_an_old_champion_does_not_apply() {
        let entries = vec![
            entry("a", ModelState::Champion, true),
            entry("b", ModelState::Candidate, true),
            entry("c", ModelState::Candidate, true),
        ];
        let to_b = promote(&entries, "b", false).unwrap_or_else(|e| panic!("{e}"));
        let to_c = promote(&entries, "c", false).unwrap_or_else(|e| panic!("{e}"));
        let after_b = apply(&entries, &to_b).unwrap_or_else(|| panic!("expected a value"));
        assert_eq!(apply(&after_b, &to_c), None, "the champion moved");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Promote(usize, bool),
        Rollback,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..6, any::<bool>()).prop_map(|(i, f)| Op::Promote(i, f)),
            Just(Op::Rollback),
        ]
    }

    proptest! {
        /// Whatever operators do, at most one version serves, a refused plan
        /// changes nothing, every applied plan names the champion it leaves,
        /// and a rollback right after a promotion restores the champion before it.
        #[test]
        fn one_champion_whatever_happens(
            gates in proptest::collection::vec(any::<bool>(), 6),
            ops in proptest::collection::vec(op(), 0..40),
        ) {
            let mut entries: Vec<ModelEntry> = gates
                .iter()
                .enumerate()
                .map(|(i, g)| entry(&format!("v{i}"), ModelState::Candidate, *g))
                .collect();
            entries = apply(&entries, &adopt_base(&entries, "v0").unwrap_or_else(|| panic!("expected a value"))).unwrap_or_else(|| panic!("expected a value"));
            for op in ops {
                let before = champion(&entries).map(|c| c.version.clone());
                let plan = match &op {
                    Op::Promote(i, force) => promote(&entries, &format!("v{i}"), *force),
                    Op::Rollback => rollback(&entries),
                };
                let Ok(plan) = plan else { continue };
                let next = apply(&entries, &plan);
                prop_assert!(next.is_some(), "a fresh plan applies: {plan:?}");
                let next = next.unwrap_or_default();
                prop_assert_eq!(champions(&next), 1);
                prop_assert_eq!(&champion(&next).map(|c| c.version.clone()), &Some(plan.champion.clone()));
                if let Op::Promote(..) = op {
                    let back = apply(&next, &rollback(&next).unwrap_or(plan.clone()));
                    if let Some(back) = back {
                        prop_assert_eq!(champion(&back).map(|c| c.version.clone()), before);
                    }
                }
                entries = next;
            }
        }
    }
}
