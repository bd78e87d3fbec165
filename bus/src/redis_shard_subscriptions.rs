//! The subscription side of the Redis Cluster backend: sharded pub/sub
//! (`SSUBSCRIBE`), on one RESP3 connection per master that serves a
//! channel this process listens to.
//!
//! Not the redis crate's cluster pub/sub: after a disconnect it replays
//! every shard channel in one command routed by the first channel, which
//! the server refuses (`CROSSSLOT`) as soon as two rooms live on different
//! slots (the bug node-redis, redis-py and ioredis each had to fix). So the
//! loop here is our own:
//! - a channel is subscribed on the master of its slot, one `SSUBSCRIBE`
//!   per channel, so that one command never mixes slots;
//! - a broken link, or an unsolicited `SUNSUBSCRIBE` (its slot migrated,
//!   or its master became a replica), leaves its channels orphaned; the
//!   mender reads the slot map again and subscribes them where they live
//!   now, slot by slot, until none is left;
//! - each master link also carries a probe channel of this process; a
//!   probe published through the command connection every second must
//!   come back within two, or the link is taken for dead and replaced,
//!   even if its TCP connection looks fine: a subscription can be lost
//!   silently while every health check stays green.
//!
//! Losses and restorations are counted as on a single Redis
//! (`snakepit_redis_reconnects_total`, `snakepit_pubsub_resubscribes_total`
//! and [`ShardSubscriptions::losses`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use redis::aio::MultiplexedConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::BusError;
use crate::pubsub_router::{FirstSubscribe, Route, Router};
use crate::redis_commands::ClusterCommands;
use crate::redis_metrics::Link as LinkMetric;
use crate::redis_shards::{Node, SlotMap, slot_of, tag_for_slot};

/// How often the mender looks for orphaned channels.
const MEND_EVERY: Duration = Duration::from_millis(100);
/// How often each link is probed, and how long a probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_WITHIN: Duration = Duration::from_secs(2);
const RENEW_AT_MOST_EVERY: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How to reach a master (the seed's settings, its address).
#[derive(Clone)]
pub(crate) struct NodeClients {
    pub(crate) seed: ConnectionInfo,
    pub(crate) ca_pem: Option<Vec<u8>>,
}

impl NodeClients {
    fn client(&self, node: &Node) -> Result<redis::Client, BusError> {
        let addr = match self.seed.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                host: node.host.clone(),
                port: node.port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(node.host.clone(), node.port),
        };
        let info = self.seed.clone().set_addr(addr);
        Ok(match &self.ca_pem {
            None => redis::Client::open(info)?,
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
            )?,
        })
    }
}

/// One master's subscription connection.
struct Link {
    id: u64,
    conn: MultiplexedConnection,
    /// The channels subscribed on it (the probe apart).
    channels: BTreeSet<String>,
    probe: Option<Probe>,
}

struct Probe {
    channel: String,
    seen: Arc<AtomicBool>,
    /// When the probe now under way was published.
    sent: Option<Instant>,
}

/// What the mender keeps, under one lock: taking it orders every
/// SSUBSCRIBE and SUNSUBSCRIBE after the routes check before it.
#[derive(Default)]
struct State {
    map: SlotMap,
    links: HashMap<Node, Link>,
    /// Channels with subscribers that no link carries now.
    orphans: BTreeSet<String>,
    /// Orphans have been waiting since a loss: their return is counted.
    restoring: bool,
    /// When the command connection was last renewed.
    renewed: Option<Instant>,
}

/// What the push router tells the mender.
enum LinkEvent {
    Lost(u64),
    Unsubscribed(u64, String),
}

struct Shared {
    router: Router,
    state: tokio::sync::Mutex<State>,
    cmd: ClusterCommands,
    nodes: NodeClients,
    pushes: mpsc::UnboundedSender<(u64, PushInfo)>,
    next_link: AtomicU64,
    losses: AtomicU64,
    /// Probe channels are `<this>:<tag>`-named: this process's own.
    probe_prefix: String,
    resubscribes: Option<IntCounter>,
    metric: std::sync::Mutex<LinkMetric>,
}

/// The sharded subscriptions of a process and their local subscribers.
#[derive(Clone)]
pub(crate) struct ShardSubscriptions {
    shared: Arc<Shared>,
}

impl ShardSubscriptions {
    /// Starts routing and mending until `stop` is cancelled. `cmd` is the
    /// cluster's command connection (slot maps, probes); channels of the
    /// probes are named under `prefix`.
    pub(crate) fn start(
        cmd: ClusterCommands,
        nodes: NodeClients,
        prefix: &str,
        metric: LinkMetric,
        resubscribes: Option<IntCounter>,
        stop: CancellationToken,
    ) -> Self {
        let (pushes, push_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            router: Router::default(),
            state: Default::default(),
            cmd,
            nodes,
            pushes,
            next_link: AtomicU64::new(1),
            losses: AtomicU64::new(0),
            probe_prefix: format!("{prefix}:probe:{}", uuid::Uuid::new_v4().simple()),
            resubscribes,
            metric: std::sync::Mutex::new(metric),
        });
        tokio::spawn(route(shared.clone(), push_rx, events_tx, stop.clone()));
        tokio::spawn(mend(shared.clone(), events_rx, stop));
        Self { shared }
    }

    /// Link losses and restorations so far (see `Ownership::link_losses`):
    /// either means that, for a while, a channel's subscribers may have
    /// been away.
    pub(crate) fn losses(&self) -> u64 {
        self.shared.losses.load(Ordering::Relaxed)
    }

    /// Adds a subscriber of `channel`, subscribing it on its shard if it is
    /// the channel's first.
    pub(crate) async fn subscribe_route(&self, channel: String, deliver: Route) -> Result<(), BusError> {
        let mut state = self.shared.state.lock().await;
        if !self.shared.router.add(&channel, deliver) {
            return Ok(());
        }
        let first = FirstSubscribe::new(&self.shared.router, &channel);
        let subscribed = self.shared.subscribe_now(&mut state, &channel).await;
        first.settled();
        if let Err(e) = subscribed {
            self.shared.router.remove(&channel);
            return Err(e);
        }
        Ok(())
    }
}

impl Shared {
    /// Reads the slot map from any node.
    async fn slot_map(&self) -> Result<SlotMap, BusError> {
        let mut cmd = self.cmd.current();
        let asking = cmd.route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        );
        // A node that is stopped, not dead, answers nobody: ask again later.
        let reply = tokio::time::timeout(RESPONSE_TIMEOUT, asking)
            .await
            .map_err(|_| BusError::Unavailable("CLUSTER SLOTS timed out".into()))??;
        let asked = match self.nodes.seed.addr() {
            ConnectionAddr::Tcp(h, _) | ConnectionAddr::TcpTls { host: h, .. } => h.clone(),
            _ => String::new(),
        };
        let map = SlotMap::parse(&reply, &asked)?;
        if map.is_empty() {
            return Err(BusError::Unavailable("the cluster serves no slot".into()));
        }
        Ok(map)
    }

    /// Takes a freshly read slot map; if a slot changed master, the
    /// command connection is renewed too (see [`ClusterCommands`]).
    fn take_map(&self, state: &mut State, map: SlotMap) {
        // Nodes may disagree for a while (a failover under way): renew at
        // most every few seconds, not at every differing answer.
        let due = state.renewed.is_none_or(|t| t.elapsed() >= RENEW_AT_MOST_EVERY);
        if !state.map.is_empty() && state.map != map && due {
            state.renewed = Some(Instant::now());
            info!("the cluster's slot map changed; renewing the command connection");
            let cmd = self.cmd.clone();
            tokio::spawn(async move {
                if let Err(e) = cmd.renew().await {
                    warn!(error = %e, "renewing the cluster connection failed");
                }
            });
        }
        state.map = map;
    }

    /// The link to `node`, made if there is none.
    async fn link<'a>(&self, state: &'a mut State, node: &Node) -> Result<&'a mut Link, BusError> {
        use std::collections::hash_map::Entry;
        match state.links.entry(node.clone()) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let id = self.next_link.fetch_add(1, Ordering::Relaxed);
                let pushes = self.pushes.clone();
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_push_sender(move |info: PushInfo| pushes.send((id, info)));
                let client = self.nodes.client(node)?;
                let connecting = client.get_multiplexed_async_connection_with_config(&config);
                let conn = tokio::time::timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, connecting)
                    .await
                    .map_err(|_| BusError::Unavailable(format!("connecting to {node} timed out")))??;
                debug!(%node, "subscription link made");
                Ok(e.insert(Link { id, conn, channels: BTreeSet::new(), probe: None }))
            }
        }
    }

    /// Subscribes `channel` on its slot's master now: a second try on a
    /// fresh slot map if the first fails (the slot moved, a stale link).
    async fn subscribe_now(&self, state: &mut State, channel: &str) -> Result<(), BusError> {
        let mut last = None;
        for fresh in [false, true] {
            if fresh || state.map.is_empty() {
                let map = self.slot_map().await?;
                self.take_map(state, map);
            }
            let Some(node) = state.map.node(slot_of(channel.as_bytes())).cloned() else {
                last = Some(BusError::Unavailable(format!("no master serves the slot of {channel}")));
                continue;
            };
            let link = match self.link(state, &node).await {
                Ok(link) => link,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match redis::cmd("SSUBSCRIBE").arg(channel).exec_async(&mut link.conn.clone()).await {
                Ok(()) => {
                    link.channels.insert(channel.to_owned());
                    state.orphans.remove(channel);
                    return Ok(());
                }
                Err(e) => {
                    debug!(channel, %node, error = %e, "SSUBSCRIBE failed");
                    if e.is_unrecoverable_error() {
                        self.drop_link(state, &node);
                    }
                    last = Some(e.into());
                }
            }
        }
        Err(last.unwrap_or_else(|| BusError::Unavailable("SSUBSCRIBE failed".into())))
    }

    /// Unsubscribes `channel` unless it has subscribers again.
    async fn unsubscribe_unused(&self, channel: &str) {
        let mut state = self.state.lock().await;
        if self.router.has(channel) {
            return;
        }
        state.orphans.remove(channel);
        let Some(link) = state.links.values_mut().find(|l| l.channels.contains(channel)) else { return };
        link.channels.remove(channel);
        if let Err(e) = redis::cmd("SUNSUBSCRIBE").arg(channel).exec_async(&mut link.conn.clone()).await {
            debug!(channel, error = %e, "SUNSUBSCRIBE failed");
        }
    }

    /// Forgets the link to `node`; its channels are orphans to mend.
    fn drop_link(&self, state: &mut State, node: &Node) {
        let Some(link) = state.links.remove(node) else { return };
        if let Some(p) = &link.probe {
            self.router.remove(&p.channel);
        }
        if !link.channels.is_empty() {
            state.restoring = true;
            state.orphans.extend(link.channels);
            self.losses.fetch_add(1, Ordering::Relaxed);
            self.metric.lock().unwrap_or_else(|e| e.into_inner()).lost();
        }
    }

    /// What the router heard about a link.
    fn on_event(&self, state: &mut State, event: LinkEvent) {
        match event {
            LinkEvent::Lost(id) => {
                if let Some(node) = state.links.iter().find(|(_, l)| l.id == id).map(|(n, _)| n.clone()) {
                    warn!(%node, "subscription link lost");
                    self.drop_link(state, &node);
                }
            }
            LinkEvent::Unsubscribed(id, channel) => {
                let Some(link) = state.links.values_mut().find(|l| l.id == id) else { return };
                if link.probe.as_ref().is_some_and(|p| p.channel == channel) {
                    // The probe's slot moved: a new probe on a slot the
                    // master still serves.
                    if let Some(p) = link.probe.take() {
                        self.router.remove(&p.channel);
                    }
                } else if link.channels.remove(&channel) && self.router.has(&channel) {
                    debug!(channel, "shard channel unsubscribed by the server (its slot moved)");
                    state.restoring = true;
                    state.orphans.insert(channel);
                    self.losses.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Subscribes the orphans where their slots live now, slot by slot.
    async fn restore(&self, state: &mut State) {
        if state.orphans.is_empty() {
            return;
        }
        match self.slot_map().await {
            Ok(map) => self.take_map(state, map),
            Err(e) => {
                debug!(error = %e, "no slot map yet");
                return;
            }
        }
        let mut by_node: BTreeMap<Node, BTreeMap<u16, Vec<String>>> = BTreeMap::new();
        for ch in &state.orphans {
            let slot = slot_of(ch.as_bytes());
            if let Some(node) = state.map.node(slot) {
                by_node.entry(node.clone()).or_default().entry(slot).or_default().push(ch.clone());
            }
        }
        for (node, slots) in by_node {
            let link = match self.link(state, &node).await {
                Ok(link) => link,
                Err(e) => {
                    debug!(%node, error = %e, "cannot reach the master yet");
                    continue;
                }
            };
            let mut conn = link.conn.clone();
            let mut done = Vec::new();
            let mut broken = false;
            for (slot, channels) in slots {
                // One slot's channels in one round trip, one per command.
                let mut pipe = redis::pipe();
                for ch in &channels {
                    pipe.cmd("SSUBSCRIBE").arg(ch).ignore();
                }
                match pipe.exec_async(&mut conn).await {
                    Ok(()) => done.extend(channels),
                    Err(e) => {
                        debug!(%node, slot, error = %e, "resubscribing a slot failed");
                        broken |= e.is_unrecoverable_error();
                    }
                }
            }
            for ch in done {
                state.orphans.remove(&ch);
                if let Some(link) = state.links.get_mut(&node) {
                    link.channels.insert(ch);
                }
            }
            if broken {
                self.drop_link(state, &node);
            }
        }
        // Channels whose subscribers left meanwhile need no home.
        state.orphans.retain(|ch| self.router.has(ch));
        if state.orphans.is_empty() && std::mem::take(&mut state.restoring) {
            self.losses.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = &self.resubscribes {
                c.inc();
            }
            self.metric.lock().unwrap_or_else(|e| e.into_inner()).answered();
            info!("shard subscriptions restored");
        }
    }

    /// Probes every link that carries channels; replaces those whose last
    /// probe never came back, and closes those that carry nothing.
    async fn probe(&self, state: &mut State) {
        // The map as it is now (a master may have changed with no link of
        // ours breaking).
        if let Ok(map) = self.slot_map().await {
            self.take_map(state, map);
        }
        let idle: Vec<Node> =
            state.links.iter().filter(|(_, l)| l.channels.is_empty()).map(|(n, _)| n.clone()).collect();
        for node in idle {
            self.drop_link(state, &node);
        }
        let nodes: Vec<Node> = state.links.keys().cloned().collect();
        for node in nodes {
            let Some(slot) = state.map.a_slot_of(&node) else {
                // No longer a master (a replica took over from it, maybe
                // while it was silent): its channels move to where their
                // slots are now.
                warn!(%node, "a subscription link's node is no longer a master; moving its channels");
                self.drop_link(state, &node);
                continue;
            };
            let Some(link) = state.links.get_mut(&node) else { continue };
            let dead = link
                .probe
                .as_ref()
                .is_some_and(|p| p.sent.is_some_and(|t| t.elapsed() > PROBE_WITHIN) && !p.seen.load(Ordering::Relaxed));
            if dead {
                warn!(%node, "a subscription link stopped delivering; replacing it");
                self.drop_link(state, &node);
                continue;
            }
            if link.probe.is_none() {
                let channel = format!("{}:{{{}}}", self.probe_prefix, tag_for_slot(slot));
                match redis::cmd("SSUBSCRIBE").arg(&channel).exec_async(&mut link.conn.clone()).await {
                    Ok(()) => {
                        let seen = Arc::new(AtomicBool::new(false));
                        self.router.add(&channel, probe_route(seen.clone()));
                        link.probe = Some(Probe { channel, seen, sent: None });
                    }
                    Err(e) => {
                        debug!(%node, error = %e, "probe subscription failed");
                        continue;
                    }
                }
            }
            let Some(probe) = link.probe.as_mut() else { continue };
            if probe.sent.is_none() || probe.seen.load(Ordering::Relaxed) {
                probe.seen.store(false, Ordering::Relaxed);
                probe.sent = Some(Instant::now());
                // Published on its own: a master that answers nobody must
                // not hold up the mending of the others.
                let (mut cmd, channel) = (self.cmd.current(), probe.channel.clone());
                tokio::spawn(async move {
                    let mut publish = redis::cmd("SPUBLISH");
                    publish.arg(&channel).arg("p");
                    let publishing = publish.query_async::<i64>(&mut cmd);
                    match tokio::time::timeout(PROBE_WITHIN, publishing).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => debug!(channel, error = %e, "probe not published"),
                        Err(_) => debug!(channel, "probe publish timed out"),
                    }
                });
            }
        }
    }
}

/// A probe channel's route: notes that the probe came back.
fn probe_route(seen: Arc<AtomicBool>) -> Route {
    Box::new(move |payload: &[u8]| {
        if !payload.is_empty() {
            seen.store(true, Ordering::Relaxed);
        }
        true
    })
}

/// Hands each message to its subscribers; tells the mender of links lost
/// and channels the server unsubscribed.
async fn route(
    shared: Arc<Shared>,
    mut pushes: mpsc::UnboundedReceiver<(u64, PushInfo)>,
    events: mpsc::UnboundedSender<LinkEvent>,
    stop: CancellationToken,
) {
    loop {
        let (link, msg) = tokio::select! {
            _ = stop.cancelled() => break,
            msg = pushes.recv() => match msg {
                Some(m) => m,
                None => break,
            },
        };
        match msg.kind {
            PushKind::SMessage => {
                let (Some(Value::BulkString(ch)), Some(Value::BulkString(payload))) =
                    (msg.data.first(), msg.data.get(1))
                else {
                    continue;
                };
                let ch = String::from_utf8_lossy(ch);
                if shared.router.dispatch(&ch, payload) {
                    let (shared, ch) = (shared.clone(), ch.into_owned());
                    tokio::spawn(async move { shared.unsubscribe_unused(&ch).await });
                }
            }
            PushKind::SUnsubscribe => {
                if let Some(Value::BulkString(ch)) = msg.data.first() {
                    let _ = events.send(LinkEvent::Unsubscribed(link, String::from_utf8_lossy(ch).into_owned()));
                }
            }
            PushKind::Disconnection => {
                let _ = events.send(LinkEvent::Lost(link));
            }
            _ => {}
        }
    }
}

/// Mends: handles link events, restores orphans, probes the links and
/// unsubscribes channels whose subscribers have gone.
async fn mend(shared: Arc<Shared>, mut events: mpsc::UnboundedReceiver<LinkEvent>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(MEND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_probe = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            event = events.recv() => {
                let Some(event) = event else { break };
                let mut state = shared.state.lock().await;
                shared.on_event(&mut state, event);
                while let Ok(event) = events.try_recv() {
                    shared.on_event(&mut state, event);
                }
                shared.restore(&mut state).await;
            }
            _ = tick.tick() => {
                let mut state = shared.state.lock().await;
                shared.restore(&mut state).await;
                if last_probe.elapsed() >= PROBE_EVERY {
                    last_probe = Instant::now();
                    shared.probe(&mut state).await;
                    drop(state);
                    for ch in shared.router.sweep() {
                        shared.unsubscribe_unused(&ch).await;
                    }
                }
            }
        }
    }
}
