//! The backend contract, against the in-memory backend.

use snakepit_shared::MemoryBackend;
use snakepit_shared::contract::*;

#[tokio::test]
async fn pubsub() {
    pubsub_delivers_in_order_per_room(MemoryBackend::new()).await;
}

#[tokio::test]
async fn unsubscribe() {
    dropped_subscriptions_receive_nothing(MemoryBackend::new()).await;
}

#[tokio::test]
async fn notices() {
    notices_reach_subscribers(MemoryBackend::new()).await;
}

#[tokio::test]
async fn directory() {
    directory_matchmakes_without_overbooking(MemoryBackend::new()).await;
}

#[tokio::test]
async fn concurrent_seats() {
    concurrent_seats_never_overbook(MemoryBackend::new()).await;
}

#[tokio::test]
async fn sessions() {
    sessions_expire(MemoryBackend::new()).await;
}

#[tokio::test]
async fn top_scores() {
    top_scores_keep_the_best_per_name(MemoryBackend::new()).await;
}

#[tokio::test]
async fn ownership() {
    leases_fence_snapshots_and_expire(MemoryBackend::new()).await;
}
