//! The reporter: a bounded queue between the request path and a sink.
//!
//! The request path only ever does a `try_send` on a std bounded channel
//! (a few atomics, no waiting, no wake-up unless its shard just reached its
//! share of a batch). The queue is sharded, one channel per CPU up to 8,
//! and a thread sends to its own, so server threads do not fight over one
//! channel's cursor. One
//! tokio task per reporter drains the channels into batches and calls the
//! sink, one batch at a time, retrying a failed batch before it takes the
//! next. So a sink is never called concurrently by one reporter, and while
//! it is slow or failing the queue absorbs the traffic; once the queue is
//! full, events are dropped and counted, and requests go on unaffected.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::event::UsageEvent;
use super::notice::Notice;

/// Why a sink could not take a batch: a message for the log (the reporter
/// logs it at `warn` on each retry and at `error` when it gives up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("usage sink failed: {0}")]
pub struct SinkError(pub String);

impl SinkError {
    /// An error saying `what`.
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// Where usage events go, a batch at a time. A [`Reporter`] calls it from
/// its own task, never from the request path, and calls it again with the
/// same batch when it fails.
///
/// While `send` runs, the reporter delivers nothing else: a sink should
/// bound its own time (as [`HttpSink`](super::HttpSink)'s timeout does)
/// rather than hang, or its queue fills and events are dropped. One sink
/// may serve several reporters, and is then called concurrently.
#[async_trait]
pub trait UsageSink: Send + Sync + 'static {
    /// Takes one batch. An error means none of it was taken: the reporter
    /// retries the whole batch. A sink that has taken part of a batch
    /// before failing sees that part again: counts kept by the sink may be
    /// higher than the requests when it fails midway (at least once).
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError>;

    /// Takes notices (changes made through the management API, quota
    /// alerts), a few at a time, in the order they came. The default takes
    /// and ignores them. An error: the reporter retries as it retries a
    /// batch of events.
    async fn notify(&self, notices: &[Notice]) -> Result<(), SinkError> {
        let _ = notices;
        Ok(())
    }
}

/// Notices waiting at most; more are dropped and counted in
/// [`Reporter::dropped_notices`]. They are rare (a change, an alert), so
/// this is slack for a sink that is down.
const MAX_NOTICES: usize = 4096;

/// How a [`Reporter`] batches and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReporterConfig {
    /// Events waiting at most; more are dropped and counted. Default 16,384
    /// (the queue is allocated whole: about 4 MiB). It is split evenly
    /// among the [`shards`](Self::shards); a thread whose shard is full
    /// tries the others before it drops, so the bound is the whole queue.
    pub queue: usize,
    /// Channels the queue is split into; a thread sends to its own (the
    /// others when it is full), so server threads do not contend on one
    /// channel. Default 0: one per CPU. At most 8, and at most `queue`.
    /// Events of one thread reach the sink in order; events of different
    /// threads may interleave out of order (1 keeps the order of
    /// recording).
    pub shards: usize,
    /// Events per batch at most. Default 512.
    pub batch_size: usize,
    /// A batch that is not full goes out this long after its first event.
    /// Default 1 s. (Precisely: the task wakes at least this often and
    /// sends what it has, so an event waits at most about this long, plus
    /// whatever the sink takes with earlier batches.)
    pub flush_interval: Duration,
    /// The first retry's wait; each next one doubles. Default 100 ms.
    pub retry_base: Duration,
    /// The longest wait between retries. Default 10 s.
    pub retry_cap: Duration,
    /// Tries per batch before it is given up (and counted as failed).
    /// Default 8: with the default waits, about 12.7 s of retrying
    /// (0.1 + 0.2 + ... + 6.4 s) before a batch is lost, during which new
    /// events wait in the queue. 0 is taken as 1.
    pub max_attempts: u32,
}

impl Default for ReporterConfig {
    fn default() -> Self {
        Self {
            queue: 16_384,
            shards: 0,
            batch_size: 512,
            flush_interval: Duration::from_secs(1),
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(10),
            max_attempts: 8,
        }
    }
}

/// Counters shared by the handles and the task; each is a running total
/// since the reporter was made (events, except `retries`: sink calls).
#[derive(Debug, Default)]
struct Stats {
    dropped: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

/// One shard's counts, alone on their cache line so that two threads'
/// counts do not share one.
#[derive(Default)]
#[repr(align(128))]
struct Queued {
    /// Events queued and not yet taken by the task.
    count: AtomicUsize,
    /// `record` calls of this shard's threads under way: [`Reporter::shutdown`]
    /// waits for them to end before the task's last drain, so no event can
    /// be sent after it.
    recording: AtomicUsize,
}

/// Holds a shard's `recording` count up while a `record` runs.
struct Recording<'a>(&'a AtomicUsize);

impl<'a> Recording<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        // SeqCst, with the `stopping` load that follows and `shutdown`'s
        // store and loads: either this call sees `stopping`, or `shutdown`
        // sees this count and waits.
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The queue is split into shards, one per thread that records (up to
/// [`MAX_SHARDS`]): a thread sends to its own shard, so two server
/// threads do not contend on one channel's cursor and count.
const MAX_SHARDS: usize = 8;

/// This thread's shard number (taken in turn by threads as they first
/// record), modulo the shard count.
fn shard_of_thread() -> usize {
    use std::cell::Cell;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    MINE.try_with(|m| match m.get() {
        Some(i) => i,
        None => {
            let i = NEXT.fetch_add(1, Ordering::Relaxed);
            m.set(Some(i));
            i
        }
    })
    .unwrap_or(0)
}

/// What the [`Reporter`] handles share.
struct Inner {
    /// Each shard channel's sending side. Dropping the last handle drops
    /// them, which the task sees as disconnection: it delivers what is left
    /// and ends.
    tx: Box<[SyncSender<UsageEvent>]>,
    stats: Arc<Stats>,
    /// Events queued and not yet taken by the task, by shard.
    queued: Arc<[Queued]>,
    /// Wakes the task: a batch is full, or shutdown.
    wake: Arc<Notify>,
    /// Set by [`Reporter::shutdown`]: `record` drops from then on.
    stopping: AtomicBool,
    /// Set by [`Reporter::shutdown`] once no `record` is under way: the
    /// task drains and ends.
    closed: Arc<AtomicBool>,
    /// The count queued in one shard at which `record` wakes the task: a
    /// batch's share of it.
    wake_at: usize,
    /// The task, taken (and awaited) by the first `shutdown`.
    ///
    /// An async mutex, held while the task is awaited: a second
    /// `shutdown` called meanwhile waits for the same delivery.
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Notices waiting for the task, at most [`MAX_NOTICES`].
    notices: Arc<Mutex<Vec<Notice>>>,
    /// Notices dropped: the queue was full, or the reporter had shut down.
    dropped_notices: AtomicU64,
}

/// Takes usage events on the request path without waiting, and hands them
/// to a [`UsageSink`] in batches from a background task.
///
/// `record` never blocks: when the queue is full the event is dropped and
/// counted ([`dropped`](Self::dropped), and the `tollgate_usage_dropped`
/// counter of the `metrics` crate). A failing sink is retried with capped
/// exponential backoff, the same batch each time, up to
/// [`ReporterConfig::max_attempts`]; then the batch is counted as
/// [`failed`](Self::failed). [`shutdown`](Self::shutdown) delivers everything
/// queued before it returns.
///
/// **Delivery**: at least once while the process lives (a sink that fails
/// after taking part of a batch sees that part again), provided the sink
/// recovers within the attempts. A crash loses what is queued and the batch
/// in flight; an event dropped at a full queue is only counted.
///
/// Clones share one queue, one task and one set of counters. A
/// [`UsageLayer`](super::UsageLayer) may hold several reporters, one per
/// sink; each has its own queue, so a slow sink cannot hold up another.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tollgate::usage::{AggregatingSink, Reporter, ReporterConfig};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut config = ReporterConfig::default();
/// config.queue = 1024; // about 1,000 events of slack for an outage
/// config.flush_interval = Duration::from_millis(200);
/// let reporter = Reporter::with_config(Arc::new(AggregatingSink::new()), config);
/// // ... build the layer with `reporter.clone()` and serve ...
/// reporter.shutdown().await; // before the runtime stops: nothing queued is lost
/// assert_eq!(reporter.dropped(), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("dropped", &self.dropped())
            .field("delivered", &self.delivered())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter for `sink` with the default config. Spawns its task on the
    /// current tokio runtime (call it inside one).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn new(sink: Arc<dyn UsageSink>) -> Self {
        Self::with_config(sink, ReporterConfig::default())
    }

    /// A reporter for `sink` with `config`. A `queue` or `batch_size` of 0
    /// is taken as 1. Panics outside a tokio runtime, as [`new`](Self::new).
    pub fn with_config(sink: Arc<dyn UsageSink>, config: ReporterConfig) -> Self {
        // Plain bounded channels: a send is a few atomics and wakes no one
        // but when its shard reaches its share of a batch; else the task
        // wakes at the batch's deadline.
        let shards = match config.shards {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
        // Never more shards than events: each shard has room for one.
        .clamp(1, MAX_SHARDS.min(config.queue.max(1)));
        // The queue's room, split as evenly as it goes: exactly `queue` in all.
        let queue = config.queue.max(1);
        let (tx, rx): (Vec<_>, Vec<_>) = (0..shards)
            .map(|i| sync_channel(queue / shards + usize::from(i < queue % shards)))
            .unzip();
        let stats = Arc::new(Stats::default());
        let queued: Arc<[Queued]> = (0..shards).map(|_| Queued::default()).collect();
        let wake = Arc::new(Notify::new());
        let closed = Arc::new(AtomicBool::new(false));
        let notices = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(run(Task {
            notices: notices.clone(),
            sink,
            rx,
            config,
            stats: stats.clone(),
            queued: queued.clone(),
            wake: wake.clone(),
            closed: closed.clone(),
            next: std::cell::Cell::new(0),
        }));
        Self {
            inner: Arc::new(Inner {
                tx: tx.into(),
                stats,
                queued,
                wake,
                stopping: AtomicBool::new(false),
                closed,
                wake_at: (config.batch_size.max(1) / shards).max(1),
                task: tokio::sync::Mutex::new(Some(task)),
                notices,
                dropped_notices: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `event`; drops and counts it when the queue is full or the
    /// reporter has shut down. Never waits.
    pub fn record(&self, event: UsageEvent) {
        let inner = &*self.inner;
        let n = inner.tx.len();
        let mine = shard_of_thread() % n;
        let _recording = Recording::enter(&inner.queued[mine].recording);
        if inner.stopping.load(Ordering::SeqCst) {
            inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("tollgate_usage_dropped").increment(1);
            return;
        }
        // This thread's shard; when it is full, the others in turn, so one
        // thread alone can still use the whole queue.
        let mut event = Some(event);
        let mut sent = None;
        for shard in (mine..n).chain(0..mine) {
            let Some(e) = event.take() else { break };
            match inner.tx[shard].try_send(e) {
                Ok(()) => {
                    sent = Some(shard);
                    break;
                }
                Err(TrySendError::Full(e) | TrySendError::Disconnected(e)) => event = Some(e),
            }
        }
        let Some(shard) = sent else {
            inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("tollgate_usage_dropped").increment(1);
            return;
        };
        // The task may take the event before this count sees it: the count
        // dips below zero for a moment, so it wraps rather than overflows.
        if inner.queued[shard]
            .count
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            == inner.wake_at
        {
            inner.wake.notify_one();
        }
    }

    /// Queues a notice for the sink's [`notify`](UsageSink::notify) and
    /// wakes the task; drops and counts it when 4,096 wait
    /// already or the reporter has shut down. Never waits on the sink.
    pub fn notify(&self, notice: Notice) {
        let inner = &*self.inner;
        if inner.stopping.load(Ordering::Relaxed) {
            inner.dropped_notices.fetch_add(1, Ordering::Relaxed);
            return;
        }
        {
            let mut queue = inner.notices.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= MAX_NOTICES {
                drop(queue);
                inner.dropped_notices.fetch_add(1, Ordering::Relaxed);
                return;
            }
            queue.push(notice);
        }
        inner.wake.notify_one();
    }

    /// Notices dropped because their queue was full (or closed).
    pub fn dropped_notices(&self) -> u64 {
        self.inner.dropped_notices.load(Ordering::Relaxed)
    }

    /// Events dropped because the queue was full (or closed).
    pub fn dropped(&self) -> u64 {
        self.inner.stats.dropped.load(Ordering::Relaxed)
    }

    /// Events the sink took.
    pub fn delivered(&self) -> u64 {
        self.inner.stats.delivered.load(Ordering::Relaxed)
    }

    /// Events given up after every attempt failed.
    pub fn failed(&self) -> u64 {
        self.inner.stats.failed.load(Ordering::Relaxed)
    }

    /// Failed sink calls that were retried (the last failure of a batch
    /// given up is not counted here but in [`failed`](Self::failed)).
    pub fn retries(&self) -> u64 {
        self.inner.stats.retries.load(Ordering::Relaxed)
    }

    /// Stops taking events, delivers everything queued, and returns once the
    /// sink has it (or every attempt failed). A call made while another runs
    /// returns when that one does; later calls return at once.
    ///
    /// No event is lost uncounted: every [`record`](Self::record) is either
    /// delivered (or counted [`failed`](Self::failed) after its attempts)
    /// or counted [`dropped`](Self::dropped). A `record` that races the
    /// start of shutdown is one or the other: shutdown first waits for the
    /// `record` calls under way (each a few atomics, never a wait) and only
    /// then lets the task take what is queued for the last time; a `record`
    /// that starts later sees the reporter stopping and counts its event
    /// dropped.
    pub async fn shutdown(&self) {
        let inner = &*self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        for shard in inner.queued.iter() {
            while shard.recording.load(Ordering::SeqCst) != 0 {
                tokio::task::yield_now().await;
            }
        }
        inner.closed.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let mut task = self.inner.task.lock().await;
        if let Some(running) = task.take() {
            let _ = running.await;
        }
    }
}

/// The background task's state: the receiving side and copies of the
/// shared counters and flags.
struct Task {
    sink: Arc<dyn UsageSink>,
    /// Notices waiting, shared with the reporters.
    notices: Arc<Mutex<Vec<Notice>>>,
    /// One receiver per shard.
    rx: Vec<Receiver<UsageEvent>>,
    config: ReporterConfig,
    stats: Arc<Stats>,
    queued: Arc<[Queued]>,
    wake: Arc<Notify>,
    /// [`Inner::closed`]: no `record` can queue anything any more.
    closed: Arc<AtomicBool>,
    /// The shard `take` starts at.
    next: std::cell::Cell<usize>,
}

impl Task {
    /// Moves up to `room` queued events into `batch`, shard after shard;
    /// `false` once every channel is closed and empty.
    fn take(&self, batch: &mut Vec<UsageEvent>, room: usize) -> bool {
        let mut left = room;
        let mut open = false;
        // Start one shard further each time, so a busy shard cannot keep
        // the others waiting.
        let n = self.rx.len();
        let first = self.next.get() % n;
        self.next.set(first + 1);
        for i in (first..n).chain(0..first) {
            let (rx, queued) = (&self.rx[i], &self.queued[i]);
            let mut taken = 0;
            let shard_open = loop {
                if taken == left {
                    break true;
                }
                match rx.try_recv() {
                    Ok(e) => {
                        batch.push(e);
                        taken += 1;
                    }
                    Err(TryRecvError::Empty) => break true,
                    Err(TryRecvError::Disconnected) => break false,
                }
            };
            queued.count.fetch_sub(taken, Ordering::Relaxed);
            left -= taken;
            open |= shard_open;
        }
        open
    }
}

/// The task: wake when a shard holds its share of a batch, at the batch's
/// deadline, or at shutdown; take what is queued in batches of at most
/// `batch_size`; deliver full batches at once, and a partial one at its
/// deadline (`flush_interval` after the wait in which its first event
/// came), at shutdown, or when the channels close. A partial batch taken on
/// an early wake-up stays in `batch`, keeps its deadline, and is topped up
/// next time.
async fn run(task: Task) {
    use tokio::time::Instant;
    let size = task.config.batch_size.max(1);
    let mut batch: Vec<UsageEvent> = Vec::with_capacity(size.min(4096));
    // When the batch in hand goes out, full or not.
    let mut due: Option<Instant> = None;
    loop {
        let until = due.unwrap_or_else(|| Instant::now() + task.config.flush_interval);
        // The wake-up only says "look": the deadline decides.
        let _ = tokio::time::timeout_at(until, task.wake.notified()).await;
        let stopping = task.closed.load(Ordering::SeqCst);
        deliver_notices(&task.notices, &*task.sink, &task.config).await;
        let open = loop {
            let room = size - batch.len();
            let open = task.take(&mut batch, room);
            if due.is_none() && !batch.is_empty() {
                due = Some(until);
            }
            let full = batch.len() >= size;
            if full || Instant::now() >= until || stopping || !open {
                deliver(&*task.sink, &mut batch, &task.config, &task.stats).await;
                due = None;
            }
            if !full || !open {
                break open;
            }
        };
        if !open {
            // Every `Reporter` was dropped: what was queued is delivered; done.
            deliver_notices(&task.notices, &*task.sink, &task.config).await;
            return;
        }
        if stopping {
            deliver_notices(&task.notices, &*task.sink, &task.config).await;
            // `closed` came after every `record` under way ended: what is
            // in the channels now is all there will ever be.
            while task.take(&mut batch, size) && !batch.is_empty() {
                deliver(&*task.sink, &mut batch, &task.config, &task.stats).await;
            }
            deliver(&*task.sink, &mut batch, &task.config, &task.stats).await;
            return;
        }
    }
}

/// Hands the waiting notices to the sink, retried as a batch of events is;
/// given up after the attempts (logged, not counted as events).
async fn deliver_notices(
    queue: &Mutex<Vec<Notice>>,
    sink: &dyn UsageSink,
    config: &ReporterConfig,
) {
    let notices = std::mem::take(&mut *queue.lock().unwrap_or_else(PoisonError::into_inner));
    if notices.is_empty() {
        return;
    }
    let mut wait = config.retry_base;
    let attempts = config.max_attempts.max(1);
    for attempt in 1..=attempts {
        match sink.notify(&notices).await {
            Ok(()) => return,
            Err(e) if attempt < attempts => {
                tracing::warn!(error = %e, attempt, notices = notices.len(), "usage sink refused notices; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(config.retry_cap);
            }
            Err(e) => {
                tracing::error!(error = %e, notices = notices.len(), "usage sink refused notices; given up");
            }
        }
    }
}

/// Sends `batch` until the sink takes it or the attempts run out; empties it.
/// Waits `retry_base`, doubling up to `retry_cap`, between attempts; the
/// task takes nothing from the queue meanwhile.
async fn deliver(
    sink: &dyn UsageSink,
    batch: &mut Vec<UsageEvent>,
    config: &ReporterConfig,
    stats: &Stats,
) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    let mut wait = config.retry_base;
    let attempts = config.max_attempts.max(1);
    for attempt in 1..=attempts {
        match sink.send(batch).await {
            Ok(()) => {
                stats.delivered.fetch_add(n, Ordering::Relaxed);
                batch.clear();
                return;
            }
            Err(e) if attempt < attempts => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, attempt, events = n, "usage sink failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(config.retry_cap);
            }
            Err(e) => {
                tracing::error!(error = %e, events = n, "usage sink failed; batch given up");
            }
        }
    }
    stats.failed.fetch_add(n, Ordering::Relaxed);
    metrics::counter!("tollgate_usage_failed").increment(n);
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what it is sent.
    #[derive(Default)]
    struct Count(AtomicU64);

    #[async_trait]
    impl UsageSink for Count {
        async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
            self.0.fetch_add(batch.len() as u64, Ordering::SeqCst);
            Ok(())
        }
    }

    /// Blocks its first call until released; counts what it takes and
    /// when.
    #[derive(Default)]
    struct Stuck {
        entered: tokio::sync::Notify,
        release: tokio::sync::Notify,
        calls: AtomicU64,
        got: AtomicU64,
        at: Mutex<Vec<tokio::time::Instant>>,
    }

    #[async_trait]
    impl UsageSink for Stuck {
        async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                self.entered.notify_one();
                self.release.notified().await;
            }
            self.got.fetch_add(batch.len() as u64, Ordering::SeqCst);
            self.at.lock().unwrap().push(tokio::time::Instant::now());
            Ok(())
        }
    }

    #[tokio::test]
    async fn one_thread_can_fill_the_whole_queue_across_shards() {
        let sink = Arc::new(Stuck::default());
        let config = ReporterConfig {
            queue: 64,
            shards: 4,
            batch_size: 1,
            ..ReporterConfig::default()
        };
        let reporter = Reporter::with_config(sink.clone(), config);
        reporter.record(UsageEvent::for_tests(0, 200));
        // The task has the first event and is stuck in the sink with it.
        sink.entered.notified().await;
        for i in 1..100 {
            reporter.record(UsageEvent::for_tests(i, 200));
        }
        assert_eq!(
            reporter.dropped(),
            100 - 1 - 64,
            "only beyond the queue of 64"
        );
        sink.release.notify_one();
        reporter.shutdown().await;
        assert_eq!(sink.got.load(Ordering::SeqCst), 65);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partial_batch_goes_out_at_its_deadline_however_often_the_task_wakes() {
        let sink = Arc::new(Stuck::default());
        // The first call does not block here: mark it done.
        sink.calls.store(1, Ordering::SeqCst);
        let config = ReporterConfig {
            shards: 8,
            batch_size: 512,
            flush_interval: Duration::from_millis(200),
            ..ReporterConfig::default()
        };
        let reporter = Reporter::with_config(sink.clone(), config);
        let start = tokio::time::Instant::now();
        // 64 events (a shard's share: a wake-up) every 180 ms: the task
        // wakes often, the batch never fills.
        for round in 0..10 {
            for i in 0..64 {
                reporter.record(UsageEvent::for_tests(round * 64 + i, 200));
            }
            tokio::time::sleep(Duration::from_millis(180)).await;
        }
        reporter.shutdown().await;
        let at = sink.at.lock().unwrap().clone();
        assert_eq!(sink.got.load(Ordering::SeqCst), 640);
        let first = at.first().copied().unwrap() - start;
        // Its deadline is 200 ms after the wait in which it began: well
        // before the fourth round. (Restarting the interval at each
        // wake-up held it for over a second.)
        assert!(
            first <= Duration::from_millis(700),
            "the first batch waited {first:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn threads_on_their_own_shards_lose_nothing() {
        let sink = Arc::new(Count::default());
        let config = ReporterConfig {
            shards: 4,
            batch_size: 64,
            ..ReporterConfig::default()
        };
        let reporter = Reporter::with_config(sink.clone(), config);
        assert_eq!(reporter.inner.tx.len(), 4);
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let reporter = reporter.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        reporter.record(UsageEvent::for_tests(t * 1000 + i, 200));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        reporter.shutdown().await;
        assert_eq!(reporter.dropped(), 0);
        assert_eq!(reporter.delivered(), 6000);
        assert_eq!(sink.0.load(Ordering::SeqCst), 6000);
    }

    /// The shutdown race: threads record without pause while `shutdown`
    /// runs. Every event is delivered or counted dropped, in every round:
    /// before the `recording` counts, an event sent between the task's last
    /// drain and its end was lost with the channel, counted nowhere.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_recorded_while_shutdown_runs_is_delivered_or_counted() {
        for round in 0..2000u64 {
            let sink = Arc::new(Count::default());
            let config = ReporterConfig {
                shards: 4,
                batch_size: 8,
                ..ReporterConfig::default()
            };
            let reporter = Reporter::with_config(sink.clone(), config);
            let go = Arc::new(std::sync::Barrier::new(5));
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let (reporter, go) = (reporter.clone(), go.clone());
                    std::thread::spawn(move || {
                        go.wait();
                        // Until the reporter refuses (plus a margin), then stop.
                        let mut sent = 0u64;
                        let mut after = 0;
                        while after < 50 {
                            reporter.record(UsageEvent::for_tests(t * 1_000_000 + sent, 200));
                            sent += 1;
                            if reporter.inner.stopping.load(Ordering::Relaxed) {
                                after += 1;
                            }
                        }
                        sent
                    })
                })
                .collect();
            go.wait();
            // Let some events through first, at a different point each round.
            for _ in 0..(round % 7) {
                tokio::task::yield_now().await;
            }
            reporter.shutdown().await;
            let sent: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(
                reporter.delivered() + reporter.dropped(),
                sent,
                "round {round}: delivered {} + dropped {} of {sent}",
                reporter.delivered(),
                reporter.dropped()
            );
            assert_eq!(sink.0.load(Ordering::SeqCst), reporter.delivered());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_shutdown_returns_only_once_everything_is_delivered() {
        let sink = Arc::new(Stuck::default());
        let reporter = Reporter::new(sink.clone());
        for i in 0..10 {
            reporter.record(UsageEvent::for_tests(i, 200));
        }
        let first = tokio::spawn({
            let reporter = reporter.clone();
            async move { reporter.shutdown().await }
        });
        // The task is stuck in the sink with the batch.
        sink.entered.notified().await;
        let second = tokio::spawn({
            let reporter = reporter.clone();
            async move { reporter.shutdown().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!second.is_finished(), "the second returned before delivery");
        sink.release.notify_one();
        second.await.unwrap();
        assert_eq!(sink.got.load(Ordering::SeqCst), 10);
        first.await.unwrap();
    }
}
