//! The model registry's storage contract, run against both stores, each
//! through two handles on the same data (two replicas): what one applies the
//! other reads at once, a plan made against an old champion is refused
//! whole, and files round-trip byte for byte within a bound.

use std::sync::Arc;

use emofy_game::Millis;
use emofy_game::registry::{self, ModelState};
use emofy_game::retrain::Lease;
use emofy_inference::ModelFiles;
use emofy_server::store::sqlite::{SqliteOptions, SqliteStore};
use emofy_server::store::{LeaseStore, ModelStore, NewModel, StoreError, TRAINING_LEASE};
use serde_json::json;

fn files(seed: u8, len: usize) -> ModelFiles {
    ModelFiles {
        config_json: format!("{{\"version\": \"v{seed}\"}}"),
        preprocessor_json: seed.is_multiple_of(2).then(|| "{\"size\": 64}".to_owned()),
        safetensors: (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect(),
    }
}

fn model(
    version: &str,
    parent: Option<&str>,
    gate_passed: bool,
    f: Option<ModelFiles>,
) -> NewModel {
    NewModel {
        version: version.into(),
        parent: parent.map(str::to_owned),
        architecture: "mini_xception".into(),
        gate_passed,
        test_accuracy: parent.map(|_| 0.75),
        card: json!({"gate": {"promote": gate_passed}, "data": {"counts": {"train": {"happy": 3}}}}),
        files: f,
    }
}

async fn registry_contract(a: Arc<dyn ModelStore>, b: Arc<dyn ModelStore>) {
    assert_eq!(a.champion().await.unwrap(), None);
    assert!(a.models(10).await.unwrap().is_empty());
    // Files larger than one MongoDB chunk (4 MiB) round-trip whole.
    let base_files = files(2, (9 << 20) + 7);
    assert!(
        a.register_model(
            model("base", None, true, Some(base_files.clone())),
            Millis(1_000)
        )
        .await
        .unwrap()
    );
    assert!(
        !b.register_model(model("base", None, true, None), Millis(1_001))
            .await
            .unwrap(),
        "registered once"
    );
    let read = b.model_files("base", 64 << 20).await.unwrap().unwrap();
    assert_eq!(read.safetensors, base_files.safetensors);
    assert_eq!(read.config_json, base_files.config_json);
    assert_eq!(read.preprocessor_json, base_files.preprocessor_json);
    assert!(
        matches!(
            b.model_files("base", 1 << 20).await,
            Err(StoreError::Corrupt(_))
        ),
        "bounded"
    );
    assert!(b.model_files("nope", 64 << 20).await.unwrap().is_none());

    let entries = b.model_entries().await.unwrap();
    let adopt = registry::adopt_base(&entries, "base").unwrap();
    b.apply_model_plan(&adopt, Millis(1_100)).await.unwrap();
    assert_eq!(
        a.champion().await.unwrap().as_deref(),
        Some("base"),
        "the other replica sees it"
    );
    assert!(matches!(
        a.apply_model_plan(&adopt, Millis(1_101)).await,
        Err(StoreError::Conflict(_))
    ));

    a.register_model(
        model("good", Some("base"), true, Some(files(3, 1000))),
        Millis(2_000),
    )
    .await
    .unwrap();
    a.register_model(model("bad", Some("base"), false, None), Millis(3_000))
        .await
        .unwrap();
    let entries = a.model_entries().await.unwrap();
    let stale = registry::promote(&entries, "bad", true).unwrap();
    let plan = registry::promote(&entries, "good", false).unwrap();
    a.apply_model_plan(&plan, Millis(4_000)).await.unwrap();
    assert_eq!(b.champion().await.unwrap().as_deref(), Some("good"));
    // The same result as the rules' own application of the plan.
    let mut expected = registry::apply(&entries, &plan).unwrap();
    let mut stored = b.model_entries().await.unwrap();
    expected.sort_by(|x, y| x.version.cmp(&y.version));
    stored.sort_by(|x, y| x.version.cmp(&y.version));
    assert_eq!(stored, expected);
    // A plan made against the old champion changes nothing.
    assert!(matches!(
        b.apply_model_plan(&stale, Millis(4_001)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(a.champion().await.unwrap().as_deref(), Some("good"));
    assert_eq!(
        a.model("bad").await.unwrap().unwrap().state,
        ModelState::Candidate
    );

    let good = b.model("good").await.unwrap().unwrap();
    assert_eq!(good.state, ModelState::Champion);
    assert_eq!(good.state_at, Millis(4_000));
    assert_eq!(good.replaced.as_deref(), Some("base"));
    assert_eq!(good.parent.as_deref(), Some("base"));
    assert_eq!(good.test_accuracy, Some(0.75));
    assert_eq!(good.card["data"]["counts"]["train"]["happy"], 3);
    assert!(good.has_files);
    assert!(!b.model("bad").await.unwrap().unwrap().has_files);
    assert_eq!(
        b.model("base").await.unwrap().unwrap().state,
        ModelState::Retired
    );
    let newest: Vec<String> = b
        .models(2)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(newest, ["bad", "good"]);

    // A rollback from the other replica restores the base everywhere.
    let back = registry::rollback(&b.model_entries().await.unwrap()).unwrap();
    b.apply_model_plan(&back, Millis(5_000)).await.unwrap();
    assert_eq!(a.champion().await.unwrap().as_deref(), Some("base"));
    assert_eq!(
        a.model("good").await.unwrap().unwrap().state,
        ModelState::RolledBack
    );
    // …and reads after it see what a third writer does next.
    let again = registry::promote(&a.model_entries().await.unwrap(), "good", true).unwrap();
    a.apply_model_plan(&again, Millis(6_000)).await.unwrap();
    assert_eq!(b.champion().await.unwrap().as_deref(), Some("good"));
    assert_eq!(
        b.model_files("good", 1 << 20)
            .await
            .unwrap()
            .unwrap()
            .safetensors,
        files(3, 1000).safetensors
    );
    assert!(matches!(
        b.model_files("base", 1 << 20).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(b.model_files("nope", 1 << 20).await.unwrap().is_none());
    for _ in 0..4 {
        assert_eq!(b.champion().await.unwrap().as_deref(), Some("good"));
    }
    let back = registry::rollback(&a.model_entries().await.unwrap()).unwrap();
    a.apply_model_plan(&back, Millis(7_000)).await.unwrap();
    // Every read connection of the other replica sees it (none holds an old snapshot).
    for _ in 0..4 {
        assert_eq!(b.champion().await.unwrap().as_deref(), Some("base"));
    }
}

#[actix_rt::test]
async fn sqlite_registry_meets_the_contract_across_two_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let b = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    registry_contract(a, b).await;
}

#[actix_rt::test]
async fn mongo_registry_meets_the_contract_across_two_replicas() {
    let db = format!("emofy_test_{}", uuid::Uuid::new_v4().simple());
    let uri = crate::common::mongo_uri();
    let connect = || emofy_server::store::mongo::MongoStore::connect(&uri, &db, false);
    let a = Arc::new(connect().await.expect("the MongoDB test server is running"));
    let b = Arc::new(connect().await.unwrap());
    registry_contract(a.clone(), b).await;
    a.database().drop().await.unwrap();
}

/// The training lease, through two handles (two replicas): one holder at a
/// time, renewals by the holder, takeover only after expiry, release only
/// by the holder.
async fn lease_contract(a: Arc<dyn LeaseStore>, b: Arc<dyn LeaseStore>) {
    const L: &str = TRAINING_LEASE;
    assert_eq!(a.lease(L).await.unwrap(), None);
    assert!(
        a.acquire_lease(L, "a", Millis(1_000), Millis(2_000))
            .await
            .unwrap()
    );
    assert!(
        !b.acquire_lease(L, "b", Millis(1_500), Millis(9_000))
            .await
            .unwrap(),
        "held by a until 2000"
    );
    assert_eq!(
        b.lease(L).await.unwrap(),
        Some(Lease {
            holder: "a".into(),
            expires: Millis(2_000)
        }),
        "a refused take changes nothing"
    );
    assert!(
        a.acquire_lease(L, "a", Millis(1_900), Millis(3_000))
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        !b.acquire_lease(L, "b", Millis(2_500), Millis(9_000))
            .await
            .unwrap()
    );
    b.release_lease(L, "b").await.unwrap();
    assert_eq!(
        b.lease(L).await.unwrap().map(|l| l.holder),
        Some("a".into()),
        "only the holder releases"
    );
    // Expired: anyone may take it, and the old holder then may not.
    assert!(
        b.acquire_lease(L, "b", Millis(3_000), Millis(4_000))
            .await
            .unwrap()
    );
    assert!(
        !a.acquire_lease(L, "a", Millis(3_001), Millis(5_000))
            .await
            .unwrap()
    );
    b.release_lease(L, "b").await.unwrap();
    assert_eq!(a.lease(L).await.unwrap(), None);
    assert!(
        a.acquire_lease(L, "a", Millis(3_002), Millis(5_000))
            .await
            .unwrap(),
        "free again"
    );
    // Many takers at once: exactly one wins.
    assert!(
        a.acquire_lease("race", "x", Millis(0), Millis(1))
            .await
            .unwrap()
    );
    let takers: Vec<_> = (0..8)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                s.acquire_lease("race", &format!("t{i}"), Millis(10), Millis(100))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for t in takers {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "one taker wins an expired lease");
}

#[actix_rt::test]
async fn sqlite_leases_meet_the_contract_across_two_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let b = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    lease_contract(a, b).await;
}

#[actix_rt::test]
async fn mongo_leases_meet_the_contract_across_two_replicas() {
    let db = format!("emofy_test_{}", uuid::Uuid::new_v4().simple());
    let uri = crate::common::mongo_uri();
    let connect = || emofy_server::store::mongo::MongoStore::connect(&uri, &db, false);
    let a = Arc::new(connect().await.expect("the MongoDB test server is running"));
    let b = Arc::new(connect().await.unwrap());
    lease_contract(a.clone(), b).await;
    a.database().drop().await.unwrap();
}
