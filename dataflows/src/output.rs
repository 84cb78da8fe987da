//! Closing epochs: every output's changes travel to one worker, which waits until the
//! frontier has passed an epoch and then emits one `OutputBatch` with the absolute values of
//! every key that changed, ready for one transaction. (`inspect` would see updates in
//! arbitrary time order; only the frontier says an epoch is complete.)
//!
//! Contract: batches come out in epoch order; a batch with `upto = Some(t)` holds every change
//! of the epochs before `t`; the last batch has `upto = None`. Sinks only write what they
//! receive, so this is where tests observe the pipeline without a database.

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Operator};
use timely::dataflow::StreamVec;

use crate::aggregate::{ClientSummary, LatencySummary, RankedClient, Traffic};
use crate::changes::{Changes, Latest, Materializer, Sum};
use crate::ingest::RejectRow;
use crate::key::{DomainWindow, Windowed};
use crate::pipeline::Outputs;
use crate::window::{Time, Window, WindowPolicy};

/// The table changes of one or more closed epochs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputBatch {
    /// Every epoch before this time is complete and included; `None`: the input is complete.
    pub upto: Option<Time>,
    pub traffic: Changes<DomainWindow, Traffic>,
    pub status: Changes<(DomainWindow, u16), i64>,
    pub clients: Changes<DomainWindow, ClientSummary>,
    pub latency: Changes<DomainWindow, LatencySummary>,
    pub peaks: Changes<DomainWindow, u64>,
    pub abusers: Changes<Window, Vec<RankedClient>>,
    pub rejects: Vec<(RejectRow, Time)>,
}

impl OutputBatch {
    /// Number of rows this batch writes.
    pub fn rows(&self) -> usize {
        self.traffic.len()
            + self.status.len()
            + self.clients.len()
            + self.latency.len()
            + self.peaks.len()
            + self.abusers.len()
            + self.rejects.len()
    }

    /// Folds a later batch into this one.
    pub fn merge(&mut self, later: OutputBatch) {
        self.upto = later.upto;
        self.traffic.merge(later.traffic);
        self.status.merge(later.status);
        self.clients.merge(later.clients);
        self.latency.merge(later.latency);
        self.peaks.merge(later.peaks);
        self.abusers.merge(later.abusers);
        self.rejects.extend(later.rejects);
    }
}

/// Everything that travels to the closing worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Update {
    Traffic(DomainWindow, Time, Traffic),
    Status((DomainWindow, u16), Time, i64),
    Clients(DomainWindow, Time, (ClientSummary, i64)),
    Latency(DomainWindow, Time, (LatencySummary, i64)),
    Peak(DomainWindow, Time, (u64, i64)),
    Abusers(Window, Time, (Vec<RankedClient>, i64)),
    Reject(RejectRow, Time),
}

/// Closes epochs on worker 0 and emits their changes.
pub fn close_epochs<'s>(outputs: Outputs<'s>, policy: WindowPolicy) -> StreamVec<'s, Time, OutputBatch> {
    let updates = outputs
        .traffic
        .inner
        .map(|(k, t, r)| Update::Traffic(k, t, r))
        .concat(outputs.status.inner.map(|(k, t, r)| Update::Status(k, t, r)))
        .concat(outputs.clients.inner.map(|((k, v), t, r)| Update::Clients(k, t, (v, r as i64))))
        .concat(outputs.latency.inner.map(|((k, v), t, r)| Update::Latency(k, t, (v, r as i64))))
        .concat(outputs.peaks.inner.map(|((k, v), t, r)| Update::Peak(k, t, (v, r as i64))))
        .concat(outputs.abusers.inner.map(|((k, v), t, r)| Update::Abusers(k, t, (v, r as i64))))
        .concat(outputs.rejects.map(|(row, t)| Update::Reject(row, t)));

    updates.unary_frontier::<CapacityContainerBuilder<Vec<OutputBatch>>, _, _, _>(
        Exchange::new(|_: &Update| 0),
        "CloseEpochs",
        move |capability, _info| {
            let retire = move |key: &dyn Windowed| policy.retire_time(key.window());
            let mut capability = Some(capability);
            let mut traffic = Materializer::<_, Sum<Traffic>, _>::new(move |k: &DomainWindow| retire(k));
            let mut status = Materializer::<_, Sum<i64>, _>::new(move |k: &(DomainWindow, u16)| retire(k));
            let mut clients = Materializer::<_, Latest<ClientSummary>, _>::new(move |k: &DomainWindow| retire(k));
            let mut latency = Materializer::<_, Latest<LatencySummary>, _>::new(move |k: &DomainWindow| retire(k));
            let mut peaks = Materializer::<_, Latest<u64>, _>::new(move |k: &DomainWindow| retire(k));
            let mut abusers = Materializer::<_, Latest<Vec<RankedClient>>, _>::new(move |k: &Window| retire(k));
            let mut rejects: std::collections::BTreeMap<Time, Vec<RejectRow>> = Default::default();
            move |(input, frontier), output| {
                input.for_each(|_cap, data| {
                    for update in data.drain(..) {
                        match update {
                            Update::Traffic(k, t, r) => traffic.push(k, t, r),
                            Update::Status(k, t, r) => status.push(k, t, r),
                            Update::Clients(k, t, d) => clients.push(k, t, d),
                            Update::Latency(k, t, d) => latency.push(k, t, d),
                            Update::Peak(k, t, d) => peaks.push(k, t, d),
                            Update::Abusers(k, t, d) => abusers.push(k, t, d),
                            Update::Reject(row, t) => rejects.entry(t).or_default().push(row),
                        }
                    }
                });
                let Some(cap) = capability.as_mut() else { return };
                let upto = frontier.frontier().iter().next().copied();
                if upto.is_some_and(|f| f <= *cap.time()) {
                    return;
                }
                let still_open = match upto {
                    Some(f) => rejects.split_off(&f),
                    None => Default::default(),
                };
                let closed_rejects = std::mem::replace(&mut rejects, still_open);
                let batch = OutputBatch {
                    upto,
                    traffic: traffic.close(upto),
                    status: status.close(upto),
                    clients: clients.close(upto),
                    latency: latency.close(upto),
                    peaks: peaks.close(upto),
                    abusers: abusers.close(upto),
                    rejects: closed_rejects.into_iter().flat_map(|(t, rows)| rows.into_iter().map(move |r| (r, t))).collect(),
                };
                if batch.rows() > 0 || upto.is_none() {
                    output.session(&*cap).give(batch);
                }
                match upto {
                    Some(f) => cap.downgrade(&f),
                    None => capability = None,
                }
            }
        },
    )
}
