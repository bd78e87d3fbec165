//! The backend contract, against the in-memory backend.

snakepit_bus::backend_contract_tests!(((), snakepit_bus::MemoryBackend::new()));

use snakepit_bus::{MemoryBackend, ScoreEntry, Store};

fn entry(name: &str, score: u64) -> ScoreEntry {
    ScoreEntry { name: name.into(), score, colour: 1 }
}

/// The standalone mode saves the top scores when this counter moves: it
/// must move for every change of the table, and only then.
#[tokio::test]
async fn the_scores_counter_moves_when_the_table_changes() {
    let b = MemoryBackend::new();
    let mut changes = b.watch_scores();
    b.submit_score(entry("ann", 5)).await.unwrap();
    assert!(changes.has_changed().unwrap(), "a new name");
    changes.borrow_and_update();
    b.submit_score(entry("ann", 5)).await.unwrap();
    b.submit_score(entry("ann", 3)).await.unwrap();
    assert!(!changes.has_changed().unwrap(), "no better score, no change");
    b.submit_score(entry("ann", 9)).await.unwrap();
    assert!(changes.has_changed().unwrap(), "a better score");
}

#[tokio::test]
async fn the_generation_changes_only_when_the_data_is_lost() {
    let a = MemoryBackend::new();
    let b = a.clone();
    let lost = a.clone();
    snakepit_bus::contract::generation_changes_only_when_the_data_is_lost(a, b, || {
        lost.lose_data();
        std::future::ready(())
    })
    .await;
}
