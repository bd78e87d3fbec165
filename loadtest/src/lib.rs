//! Snakepit swarm: the parts of the `swarm` load generator that do not
//! touch the network, so they can be tested alone.
//!
//! A swarm bot reads frames ([`scan`]) into its own copy of the field
//! ([`view`]), finds its own snake among those of its colour ([`snake`]),
//! steers it like a careful player ([`brain`]), and keeps
//! the protocol and its measurements in a sans-IO state machine ([`bot`]).
//! Measurements go through per-bot batches into shared counters and
//! histograms ([`stats`]) and come out as a [`report`]. [`pace`] spreads
//! connection attempts, [`backoff`] spreads reconnects, [`ledger`] checks
//! that a bot that lost its connection gets its snake back, [`events`]
//! stamps what each bot felt for scripts that cause faults, [`target`]
//! keeps the load on this machine.
//!
//! [`floor`] is the other side: the bare server (`floor` binary) a
//! gateway's cost per frame is measured against.

pub mod backoff;
pub mod bot;
pub mod brain;
pub mod dir;
pub mod events;
pub mod floor;
pub mod ledger;
pub mod pace;
pub mod report;
pub mod scan;
pub mod snake;
pub mod stats;
pub mod target;
pub mod view;
