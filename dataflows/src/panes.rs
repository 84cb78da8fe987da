//! The per-domain window engine: minute panes, windows assembled from them, every aggregate
//! kept incrementally. Pure state ([`DomainPanes`]) plus the timely operator that drives it
//! ([`domain_windows`]).
//!
//! Contract:
//! - Input: [`Hit`]s routed by domain, so one worker owns each domain; each domain's name
//!   arrives as `Ingested::Name` in the same source batch as its hits.
//! - State: per domain a run of minute slots. Slot `m` holds the minute window `[m, m+60)`,
//!   the sliding window starting at `m` (if a slide starts there), the five-minute sample
//!   starting at `m` (if `m` is one), and the minute's per-second bytes. Per (domain, client)
//!   a short list of per-minute totals. A line updates its minute, every sliding window
//!   containing it and its sample in O(1) each (plus O(k) for a top-k it enters): sums add,
//!   distinct clients rise when the client's total in the window turns non-zero, rankings
//!   and the busiest second only grow (nothing is ever subtracted from a live window).
//! - Windows must be minute-aligned (`WindowPolicy::validate` checks it), so every line
//!   that reaches a pane arrives before every window using that pane retires: a window is
//!   exactly the sum of its panes.
//! - Output: when the input frontier advances, each changed window emits its new row as
//!   differential updates at the latest stamp among the lines that changed it: a minute or
//!   sliding window its whole [`WindowRow`] as `(old, -1)`, `(new, +1)` (one row, one
//!   upsert with all its columns downstream), a sample its traffic delta. A line is never
//!   reported in an epoch before its own stamp, which is what exactly-once replay relies on
//!   (see `progress`).
//! - Retirement: once the frontier passes the retirement of the last window using a slot,
//!   the slot and its clients' minute totals are dropped whole. No retraction is emitted:
//!   the closing stage forgets retired keys by their retirement time.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::StreamVec;

use crate::frontier::{self, Stage};
use crate::aggregate::{latency_bucket, latency_summary, ClientSummary, LatencySummary, LineTraffic, Traffic, WindowRow, TOP_CLIENTS};
use crate::ingest::Ingested;
use crate::key::{DomainKey, DomainWindow, Hit};
use crate::topk::{RankBy, TopK};
use crate::window::{Time, Window, WindowKind, WindowPolicy, SAMPLE_SECS};

/// A change to one output row, as a differential update: `(data, time, diff)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowChange {
    /// A minute or sliding window's row, replaced whole: `(old, -1)` and `(new, +1)`.
    /// Shared, so the retraction of a row and the copy the engine keeps cost no copies.
    Row((DomainWindow, Arc<WindowRow>), Time, isize),
    /// A five-minute sample's traffic totals, additive: the diff is the change.
    Sample(DomainWindow, Time, Traffic),
}

/// A latency histogram: (bucket, count), sorted by bucket.
#[derive(Clone, Debug, Default)]
struct Histogram(Vec<(u16, i64)>);

impl Histogram {
    fn add(&mut self, micros: u32) {
        let bucket = latency_bucket(micros);
        match self.0.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(at) => self.0[at].1 += 1,
            Err(at) => {
                if self.0.capacity() == 0 {
                    // A minute of a busy domain fills a few dozen buckets.
                    self.0.reserve(16);
                }
                self.0.insert(at, (bucket, 1))
            }
        }
    }

    /// The sum of several histograms, into `sum` (cleared first). Each is sorted, so a
    /// linear merge per part does it without sorting; `spare` is the merge's second buffer.
    /// Both are reused across windows: assembling a window's percentiles allocates nothing.
    fn merge_into<'a>(parts: impl Iterator<Item = &'a Histogram>, sum: &mut Vec<(u16, i64)>, spare: &mut Vec<(u16, i64)>) {
        sum.clear();
        for part in parts {
            let b = &part.0[..];
            if sum.is_empty() {
                sum.extend_from_slice(b);
                continue;
            }
            spare.clear();
            let a = &sum[..];
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                match a[i].0.cmp(&b[j].0) {
                    std::cmp::Ordering::Less => {
                        spare.push(a[i]);
                        i += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        spare.push(b[j]);
                        j += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        spare.push((a[i].0, a[i].1 + b[j].1));
                        i += 1;
                        j += 1;
                    }
                }
            }
            spare.extend_from_slice(&a[i..]);
            spare.extend_from_slice(&b[j..]);
            std::mem::swap(sum, spare);
        }
    }
}

/// Buffers for assembling a window's latency histograms from its minutes.
#[derive(Default)]
struct MergeScratch {
    request: Vec<(u16, i64)>,
    upstream: Vec<(u16, i64)>,
    spare: Vec<(u16, i64)>,
}

impl MergeScratch {
    /// The percentiles of the minutes `panes` together.
    fn latency<'a>(&mut self, panes: impl Iterator<Item = &'a Slot> + Clone) -> LatencySummary {
        Histogram::merge_into(panes.clone().map(|s| &s.request_times), &mut self.request, &mut self.spare);
        Histogram::merge_into(panes.map(|s| &s.upstream_times), &mut self.upstream, &mut self.spare);
        latency_summary(&self.request, &self.upstream)
    }
}

/// The running aggregates of one window with client statistics (minute or sliding).
#[derive(Clone, Debug, Default)]
struct WindowStats {
    traffic: Traffic,
    distinct: u64,
    by_requests: TopK,
    by_bytes: TopK,
    peak_second_bytes: u64,
    dirty: Dirty,
    /// The row last emitted: what the next change retracts.
    emitted: Option<Arc<WindowRow>>,
}

/// A five-minute billing sample: traffic totals only.
#[derive(Clone, Debug, Default)]
struct SampleStats {
    traffic: Traffic,
    emitted: Traffic,
    dirty: Dirty,
}

/// Everything that starts at one minute of one domain.
#[derive(Clone, Debug, Default)]
struct Slot {
    minute: WindowStats,
    /// Requests per status code of the minute, by code.
    statuses: Vec<(u16, u64)>,
    /// The sliding window starting at this minute, if a slide starts here.
    sliding: Option<WindowStats>,
    sample: Option<SampleStats>,
    /// Bytes per second of the minute: the busiest second of any window using it.
    second_bytes: Vec<u64>,
    /// Latency histograms of the minute; a window's are the sum of its minutes'.
    request_times: Histogram,
    upstream_times: Histogram,
    /// Clients first seen in this minute: whose minute totals to drop with the slot.
    clients: Vec<IpAddr>,
}

impl Slot {
    fn new(start: u64, slide: u64) -> Slot {
        Slot {
            sliding: (start % slide == 0).then(WindowStats::default),
            sample: (start % SAMPLE_SECS == 0).then(SampleStats::default),
            second_bytes: vec![0; 60],
            ..Slot::default()
        }
    }
}

/// Whether a window changed since its last emission, and the latest stamp of any line in
/// it. Changes leave at that stamp: never before a line they report, and never before an
/// earlier change of the same window, so a key's updates arrive at the closing stage in
/// time order.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Dirty {
    changed: bool,
    latest: Time,
}

impl Dirty {
    /// Notes a line stamped `stamp`; true if the window was clean until now.
    pub(crate) fn mark(&mut self, stamp: Time) -> bool {
        self.latest = self.latest.max(stamp);
        !std::mem::replace(&mut self.changed, true)
    }

    /// The stamp to emit at, if changed; clears the change.
    pub(crate) fn take(&mut self) -> Option<Time> {
        std::mem::take(&mut self.changed).then_some(self.latest)
    }

    pub(crate) fn is_set(&self) -> bool {
        self.changed
    }
}

/// A client's totals per live minute of one domain, oldest first. Most clients are seen in
/// one or two live minutes, so a few are kept inline: a new client allocates nothing.
type ClientMinutes = SmallVec<[(u64, u64, u64); 3]>;

/// The window state of every domain a worker owns.
pub struct DomainPanes {
    policy: WindowPolicy,
    /// Per domain: the start of the first slot, and the slots.
    domains: FxHashMap<DomainKey, (u64, VecDeque<Slot>)>,
    clients: FxHashMap<(DomainKey, IpAddr), ClientMinutes>,
    names: FxHashMap<DomainKey, Arc<str>>,
    /// Windows changed since the last emission: (domain, slot start).
    dirty: Vec<(DomainKey, u64)>,
    dirty_set: FxHashSet<(DomainKey, u64)>,
    scratch: MergeScratch,
    /// Names that clashed with another name's key (see `key`): two domains' lines share
    /// state. Logged at ERROR when it happens (a broken invariant, not bad input).
    name_conflicts: u64,
}

impl DomainPanes {
    pub fn new(policy: WindowPolicy) -> DomainPanes {
        DomainPanes {
            policy,
            domains: FxHashMap::default(),
            clients: FxHashMap::default(),
            names: FxHashMap::default(),
            dirty: Vec::new(),
            dirty_set: FxHashSet::default(),
            scratch: MergeScratch::default(),
            name_conflicts: 0,
        }
    }

    /// Records the name of a domain key.
    pub fn name(&mut self, key: DomainKey, name: &str) {
        match self.names.get(&key) {
            Some(known) if **known != *name => {
                self.name_conflicts += 1;
                tracing::error!(key = key.0, known = %known, name, conflicts = self.name_conflicts, "two domains share one key; their windows are merged");
            }
            Some(_) => {}
            None => {
                self.names.insert(key, name.into());
            }
        }
    }

    #[cfg(test)]
    fn dirty_left(&self) -> Vec<(u64, &'static str)> {
        let mut left = Vec::new();
        for (base, slots) in self.domains.values() {
            for (i, slot) in slots.iter().enumerate() {
                let start = base + 60 * i as u64;
                if slot.minute.dirty.is_set() { left.push((start, "minute")); }
                if slot.sliding.as_ref().is_some_and(|s| s.dirty.is_set()) { left.push((start, "sliding")); }
                if slot.sample.as_ref().is_some_and(|s| s.dirty.is_set()) { left.push((start, "sample")); }
            }
        }
        left
    }

    /// Number of live (domain, minute) slots and (domain, client) cells: the state size.
    pub fn live_cells(&self) -> usize {
        self.domains.values().map(|(_, slots)| slots.len()).sum::<usize>() + self.clients.len()
    }

    /// Folds one line into its minute, the sliding windows containing it and its sample.
    // Out of line so a profile shows the per-line cost of the window engine by name.
    #[inline(never)]
    pub fn apply_hit(&mut self, hit: &Hit) {
        let policy = self.policy;
        let minute = hit.minute();
        let span = policy.sliding_window_secs;
        let slide = policy.slide_secs;
        // A window that turns dirty joins the list emission walks.
        let (dirty, dirty_set) = (&mut self.dirty, &mut self.dirty_set);
        let mut note_dirty = |start: u64| {
            if dirty_set.insert((hit.domain, start)) {
                dirty.push((hit.domain, start));
            }
        };
        // The earliest window using this minute starts here (sliding windows, or its sample).
        let first_start = (minute - minute % slide).saturating_sub(span - slide).min(minute - minute % SAMPLE_SECS);
        let (base, slots) = self.domains.entry(hit.domain).or_insert_with(|| (first_start, VecDeque::new()));
        if slots.is_empty() {
            *base = first_start;
        }
        while *base > first_start {
            *base -= 60;
            slots.push_front(Slot::new(*base, slide));
        }
        let index = ((minute - *base) / 60) as usize;
        while slots.len() <= index {
            slots.push_back(Slot::new(*base + 60 * slots.len() as u64, slide));
        }

        // The client's totals in this minute, and per window below.
        let cell = self.clients.entry((hit.domain, hit.client)).or_default();
        let (minute_requests, minute_bytes) = match cell.binary_search_by_key(&minute, |e| e.0) {
            Ok(at) => {
                cell[at].1 += 1;
                cell[at].2 += hit.bytes;
                (cell[at].1, cell[at].2)
            }
            Err(at) => {
                cell.insert(at, (minute, 1, hit.bytes));
                (1, hit.bytes)
            }
        };
        let traffic = LineTraffic::of_hit(hit);
        let pane = &mut slots[index];
        if minute_requests == 1 {
            pane.clients.push(hit.client);
        }
        let second = (hit.event_sec - minute) as usize;
        pane.second_bytes[second] += hit.bytes;
        let second_bytes = pane.second_bytes[second];
        if let Some(us) = hit.request_time_us {
            pane.request_times.add(us);
        }
        if let Some(us) = hit.upstream_time_us {
            pane.upstream_times.add(us);
        }
        match pane.statuses.binary_search_by_key(&hit.status, |s| s.0) {
            Ok(at) => pane.statuses[at].1 += 1,
            Err(at) => pane.statuses.insert(at, (hit.status, 1)),
        }
        let stats = &mut pane.minute;
        add_line(stats, hit, &traffic, minute_requests, minute_bytes, second_bytes);
        if stats.dirty.mark(hit.stamp) {
            note_dirty(minute);
        }

        // Sliding windows [start, start + span) containing the minute.
        let mut start = minute - minute % slide;
        loop {
            if start + span > minute {
                let at = ((start - *base) / 60) as usize;
                let (requests, bytes) = cell.iter().filter(|e| e.0 >= start && e.0 < start + span).fold((0, 0), |a, e| (a.0 + e.1, a.1 + e.2));
                if let Some(stats) = slots[at].sliding.as_mut() {
                    add_line(stats, hit, &traffic, requests, bytes, second_bytes);
                    if stats.dirty.mark(hit.stamp) {
                        note_dirty(start);
                    }
                }
            }
            if start < slide || start + span <= minute + slide {
                break;
            }
            start -= slide;
        }

        let sample_start = minute - minute % SAMPLE_SECS;
        let at = ((sample_start - *base) / 60) as usize;
        if let Some(sample) = slots[at].sample.as_mut() {
            sample.traffic.add_line(&traffic);
            if sample.dirty.mark(hit.stamp) {
                note_dirty(sample_start);
            }
        }
    }

    /// Emits the changes of every window changed since the last call whose domain name is
    /// known (a name arrives with its first lines, so the rest follow on the next call).
    pub fn emit_changes(&mut self, out: &mut Vec<WindowChange>) {
        let sliding_secs = self.policy.sliding_window_secs;
        let slot_dirty = |stats: &WindowStats| stats.dirty.is_set();
        let mut waiting = Vec::new();
        for (domain, start) in std::mem::take(&mut self.dirty) {
            let Some(name) = self.names.get(&domain) else {
                waiting.push((domain, start));
                continue;
            };
            self.dirty_set.remove(&(domain, start));
            let Some((base, slots)) = self.domains.get_mut(&domain) else { continue };
            let Some(index) = start.checked_sub(*base).map(|d| (d / 60) as usize).filter(|i| *i < slots.len()) else { continue };
            // The latency of a window is assembled from its minutes' histograms.
            let scratch = &mut self.scratch;
            let mut latency_of = |minutes: usize| scratch.latency(slots.range(index..(index + minutes).min(slots.len())));
            let minute_latency = slot_dirty(&slots[index].minute).then(|| latency_of(1));
            let sliding_latency = slots[index].sliding.as_ref().filter(|s| slot_dirty(s)).map(|_| latency_of((sliding_secs / 60) as usize));
            let slot = &mut slots[index];
            let key = |kind: WindowKind| DomainWindow::new(Arc::clone(name), Window { kind, start });
            if let Some(latency) = minute_latency {
                emit_row(&mut slot.minute, key(WindowKind::Minute), latency, slot.statuses.clone(), out);
            }
            if let (Some(stats), Some(latency)) = (slot.sliding.as_mut(), sliding_latency) {
                emit_row(stats, key(WindowKind::Sliding), latency, Vec::new(), out);
            }
            if let Some(sample) = slot.sample.as_mut() {
                if let Some(stamp) = sample.dirty.take() {
                    let delta = sample.traffic.minus(&sample.emitted);
                    if delta != Traffic::default() {
                        out.push(WindowChange::Sample(key(WindowKind::Sample5m), stamp, delta));
                        sample.emitted = sample.traffic;
                    }
                }
            }
        }
        self.dirty = waiting;
    }

    /// Drops every slot whose last window retires at or before `frontier` (`None`: all).
    pub fn retire_slots(&mut self, frontier: Option<Time>) {
        let policy = self.policy;
        let clients = &mut self.clients;
        self.domains.retain(|domain, (base, slots)| {
            while let Some(slot) = slots.front() {
                // Windows starting here are the last to use this slot's state: earlier ones
                // retire first, and the client totals of this minute serve no window after
                // the sliding window starting here.
                let last = [WindowKind::Minute, WindowKind::Sliding, WindowKind::Sample5m]
                    .map(|kind| policy.retire_time(&Window { kind, start: *base }))
                    .into_iter()
                    .max()
                    .unwrap_or(0);
                if frontier.is_some_and(|f| f < last) {
                    break;
                }
                if slot.minute.dirty.is_set() {
                    // Emission runs before retirement and a name arrives with its lines, so
                    // this would lose the window's last change: say so.
                    tracing::error!(minute = *base, ?frontier, "a minute retired with changes never emitted (its domain's name never arrived)");
                }
                for ip in &slot.clients {
                    if let Some(cell) = clients.get_mut(&(*domain, *ip)) {
                        cell.retain(|e| e.0 > *base);
                        if cell.is_empty() {
                            clients.remove(&(*domain, *ip));
                        }
                    }
                }
                slots.pop_front();
                *base += 60;
            }
            !slots.is_empty()
        });
        let domains = &self.domains;
        self.names.retain(|key, _| domains.contains_key(key));
    }
}

/// Adds a line to a window whose client now totals `requests` and `bytes` in it.
fn add_line(stats: &mut WindowStats, hit: &Hit, traffic: &LineTraffic, requests: u64, bytes: u64, second_bytes: u64) {
    stats.traffic.add_line(traffic);
    if requests == 1 {
        stats.distinct += 1;
    }
    stats.by_requests.offer(TOP_CLIENTS, RankBy::Requests, hit.client, requests, bytes);
    stats.by_bytes.offer(TOP_CLIENTS, RankBy::Bytes, hit.client, requests, bytes);
    stats.peak_second_bytes = stats.peak_second_bytes.max(second_bytes);
}

/// Emits a window's row if it changed since its last emission, at its latest dirty stamp.
fn emit_row(stats: &mut WindowStats, key: DomainWindow, latency: LatencySummary, statuses: Vec<(u16, u64)>, out: &mut Vec<WindowChange>) {
    let Some(stamp) = stats.dirty.take() else { return };
    let row = Arc::new(WindowRow {
        traffic: stats.traffic,
        clients: ClientSummary { distinct: stats.distinct, by_requests: stats.by_requests.ranked().to_vec(), by_bytes: stats.by_bytes.ranked().to_vec() },
        latency,
        peak_second_bytes: stats.peak_second_bytes,
        statuses,
    });
    if stats.emitted.as_ref() == Some(&row) {
        return;
    }
    if let Some(old) = stats.emitted.take() {
        out.push(WindowChange::Row((key.clone(), old), stamp, -1));
    }
    out.push(WindowChange::Row((key, Arc::clone(&row)), stamp, 1));
    stats.emitted = Some(row);
}

impl Stage for DomainPanes {
    type In = Ingested;
    type Out = WindowChange;

    fn apply(&mut self, item: Ingested) {
        match item {
            Ingested::Hit(hit) => self.apply_hit(&hit),
            Ingested::Name(key, name) => self.name(key, &name),
            _ => {}
        }
    }

    fn emit(&mut self, out: &mut Vec<WindowChange>) {
        self.emit_changes(out);
    }

    fn retire(&mut self, frontier: Option<Time>) {
        self.retire_slots(frontier);
    }
}

/// The window engine as an operator: hits and names routed by domain in, window changes out.
pub fn domain_windows<'s>(input: StreamVec<'s, Time, Ingested>, policy: WindowPolicy) -> StreamVec<'s, Time, WindowChange> {
    let route = |item: &Ingested| match item {
        Ingested::Hit(hit) => hit.domain.route(),
        Ingested::Name(key, _) => key.route(),
        _ => 0,
    };
    frontier::run(input, Exchange::new(route), "DomainWindows", |_| DomainPanes::new(policy))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;
    use crate::aggregate::{top_clients, ClientTraffic};
    use crate::key::CacheOutcome;

    fn policy() -> WindowPolicy {
        WindowPolicy { allowed_lateness_secs: 60, ..WindowPolicy::default() }
    }

    /// Deterministic hits over 15 minutes, in stamp order, each in a live minute.
    fn hits() -> Vec<Hit> {
        let domains = [DomainKey::of("a.example"), DomainKey::of("b.example")];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..6000u64)
            .map(|i| {
                let stamp = 600_000 + i * 900 / 6000 * 1;
                let event_sec = stamp - next() % 50;
                Hit {
                    domain: domains[(next() % 2) as usize],
                    stamp,
                    event_sec,
                    client: IpAddr::from([10, 0, (next() % 3) as u8, (next() % 40) as u8]),
                    bytes: next() % 5000,
                    status: [200, 200, 304, 404, 503][(next() % 5) as usize],
                    cache: CacheOutcome::Hit,
                    request_time_us: Some((next() % 200_000) as u32),
                    upstream_time_us: None,
                }
            })
            .collect()
    }

    /// Folds emitted changes into final values per key, as the closing stage does.
    #[derive(Default)]
    struct Tables {
        rows: BTreeMap<DomainWindow, BTreeMap<Arc<WindowRow>, isize>>,
        samples: BTreeMap<DomainWindow, Traffic>,
    }

    impl Tables {
        fn fold(&mut self, changes: Vec<WindowChange>) {
            for change in changes {
                match change {
                    WindowChange::Row((k, v), _, d) => *self.rows.entry(k).or_default().entry(v).or_default() += d,
                    WindowChange::Sample(k, _, d) => self.samples.entry(k).or_default().plus(&d),
                }
            }
        }

        /// Every window's traffic, rows and samples alike.
        fn traffic(&self) -> BTreeMap<DomainWindow, Traffic> {
            let rows = self.rows.iter().map(|(k, v)| (k.clone(), present(v).traffic));
            rows.chain(self.samples.iter().map(|(k, t)| (k.clone(), *t))).collect()
        }

        fn statuses(&self) -> BTreeMap<(DomainWindow, u16), i64> {
            let per_key = self.rows.iter().flat_map(|(k, v)| present(v).statuses.clone().into_iter().map(move |(code, n)| ((k.clone(), code), n as i64)));
            per_key.collect()
        }
    }

    fn present<V: Clone>(values: &BTreeMap<V, isize>) -> V {
        let live: Vec<&V> = values.iter().filter(|(_, c)| **c != 0).map(|(v, _)| v).collect();
        assert_eq!(live.len(), 1, "one present value per key");
        assert_eq!(values.values().filter(|c| **c != 0).sum::<isize>(), 1);
        live[0].clone()
    }

    #[test]
    fn merged_histograms_add_up_bucket_by_bucket() {
        let times = [5u32, 900, 5, 70_000, 900, 1, 5, 250_000, 901, 0];
        let mut parts = vec![Histogram::default(); 3];
        let mut expected = Histogram::default();
        for (i, us) in times.into_iter().enumerate() {
            parts[i % 3].add(us);
            expected.add(us);
        }
        let (mut sum, mut spare) = (vec![(7, 7)], Vec::new());
        Histogram::merge_into(parts.iter(), &mut sum, &mut spare);
        assert_eq!(sum, expected.0);
        Histogram::merge_into(parts[..1].iter(), &mut sum, &mut spare);
        assert_eq!(sum, parts[0].0, "a single part is itself; the buffer is reused");
    }

    #[test]
    fn a_second_name_for_one_key_is_counted_not_taken() {
        let mut panes = DomainPanes::new(policy());
        let key = DomainKey::of("a.example");
        panes.name(key, "a.example");
        panes.name(key, "a.example");
        assert_eq!(panes.name_conflicts, 0);
        panes.name(key, "b.example");
        assert_eq!(panes.name_conflicts, 1);
        assert_eq!(&*panes.names[&key], "a.example");
    }

    #[test]
    fn windows_equal_a_batch_computation_whatever_the_emission_points() {
        let policy = policy();
        let hits = hits();
        let name = |key: DomainKey| if key == DomainKey::of("a.example") { "a.example" } else { "b.example" };
        let mut panes = DomainPanes::new(policy);
        let mut tables = Tables::default();
        for (i, hit) in hits.iter().enumerate() {
            // As a source does: the name travels with the domain's lines.
            panes.name(hit.domain, name(hit.domain));
            panes.apply_hit(hit);
            if i % 357 == 0 {
                let mut out = Vec::new();
                panes.emit_changes(&mut out);
                let stamp = |c: &WindowChange| match c {
                    WindowChange::Row(_, t, _) | WindowChange::Sample(_, t, _) => *t,
                };
                assert!(out.iter().all(|c| stamp(c) <= hit.stamp), "a change leaves no later than the lines behind it");
                tables.fold(out);
                assert_eq!(panes.dirty_left(), vec![], "after emission at {i} dirty list {:?}", panes.dirty);
                panes.retire_slots(Some(hit.stamp));
            }
        }
        let mut out = Vec::new();
        panes.emit_changes(&mut out);
        tables.fold(out);
        panes.retire_slots(None);
        assert_eq!(panes.live_cells(), 0, "everything retires at the end");

        // The batch computation: every window containing each hit.
        let mut traffic: BTreeMap<DomainWindow, Traffic> = BTreeMap::new();
        let mut clients: BTreeMap<DomainWindow, HashMap<IpAddr, ClientTraffic>> = BTreeMap::new();
        let mut seconds: BTreeMap<DomainWindow, HashMap<u64, u64>> = BTreeMap::new();
        let mut statuses: BTreeMap<(DomainWindow, u16), i64> = BTreeMap::new();
        for hit in &hits {
            for kind in [WindowKind::Minute, WindowKind::Sliding, WindowKind::Sample5m] {
                for window in policy.windows_of(kind, hit.event_sec) {
                    let key = DomainWindow::new(name(hit.domain).to_string(), window);
                    traffic.entry(key.clone()).or_default().plus(&Traffic::of_hit(hit));
                    if kind == WindowKind::Sample5m {
                        continue;
                    }
                    let c = clients.entry(key.clone()).or_default().entry(hit.client).or_default();
                    c.requests += 1;
                    c.bytes += hit.bytes as i64;
                    *seconds.entry(key.clone()).or_default().entry(hit.event_sec).or_default() += hit.bytes;
                    if kind == WindowKind::Minute {
                        *statuses.entry((key, hit.status)).or_default() += 1;
                    }
                }
            }
        }
        assert_eq!(tables.traffic(), traffic);
        assert_eq!(tables.statuses(), statuses);
        let mut distinct_seen = HashSet::new();
        for (key, group) in &clients {
            let group: Vec<(&IpAddr, ClientTraffic)> = group.iter().map(|(ip, t)| (ip, *t)).collect();
            let expected = ClientSummary {
                distinct: group.len() as u64,
                by_requests: top_clients(&group, TOP_CLIENTS, |t| t.requests),
                by_bytes: top_clients(&group, TOP_CLIENTS, |t| t.bytes),
            };
            let row = present(&tables.rows[key]);
            assert_eq!(row.clients, expected, "{key:?}");
            distinct_seen.insert(expected.distinct);
            let peak = seconds[key].values().copied().max().unwrap();
            assert_eq!(row.peak_second_bytes, peak, "{key:?}");
        }
        assert!(distinct_seen.len() > 5, "the data exercises distinct counts");
    }
}
