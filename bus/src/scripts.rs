//! The Redis backend's Lua scripts, one file each in `scripts/`: every
//! decision that reads and writes at once (a seat, a lease, a fenced
//! snapshot, a score, the store's generation) runs in Redis as one script,
//! so it is atomic.
//! Each file's header says its KEYS and ARGV. The seat scripts share the
//! helpers of `seats.lua` (the server's clock, freeing expired seats,
//! holding a seat), prepended to each.

use std::sync::LazyLock;

use redis::Script;

const SEATS: &str = include_str!("scripts/seats.lua");

fn seats_script(body: &str) -> Script {
    Script::new(&format!("{SEATS}\n{body}"))
}

pub(crate) static TAKE_SEAT: LazyLock<Script> = LazyLock::new(|| seats_script(include_str!("scripts/take_seat.lua")));
pub(crate) static RELEASE_SEAT: LazyLock<Script> =
    LazyLock::new(|| seats_script(include_str!("scripts/release_seat.lua")));
pub(crate) static CONFIRM_SEATS: LazyLock<Script> =
    LazyLock::new(|| seats_script(include_str!("scripts/confirm_seats.lua")));
pub(crate) static LIST_ROOMS: LazyLock<Script> = LazyLock::new(|| seats_script(include_str!("scripts/list_rooms.lua")));
pub(crate) static ROOM_INFO: LazyLock<Script> = LazyLock::new(|| seats_script(include_str!("scripts/room_info.lua")));
pub(crate) static RETIRE_ROOM: LazyLock<Script> =
    LazyLock::new(|| seats_script(include_str!("scripts/retire_room.lua")));
pub(crate) static SUBMIT_SCORE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/submit_score.lua")));
pub(crate) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/heartbeat.lua")));
pub(crate) static LIVE_WORKERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/live_workers.lua")));
pub(crate) static ACQUIRE_LEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/acquire_lease.lua")));
pub(crate) static RENEW_LEASES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/renew_leases.lua")));
pub(crate) static RELEASE_LEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/release_lease.lua")));
pub(crate) static SAVE_SNAPSHOTS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/save_snapshots.lua")));
pub(crate) static DROP_ROOM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/drop_room.lua")));
pub(crate) static GENERATION: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/generation.lua")));
pub(crate) static BREAK_LEASES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/break_leases.lua")));
