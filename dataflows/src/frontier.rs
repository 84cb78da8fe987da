//! The operator shape every aggregation stage shares: fold input as it arrives, and when the
//! input frontier advances, emit what changed and drop state that can no longer change.
//!
//! Contract for a [`Stage`]: `emit` may only produce updates stamped at or after the times of
//! the inputs that caused them, which are never before the operator's capability (the input
//! frontier when it last emitted). Emitting only on a frontier advance folds everything read
//! in between into one evaluation, and evaluations are at least [`MIN_ROUND`] of wall time
//! apart (the capability waits meanwhile): a backfill whose frontier advances a thousand
//! times a second pays a few dozen evaluations, while live results still move every tick.
//! What an evaluation emits depends only on the data (updates carry their inputs' stamps),
//! never on when it ran, which is what lets a replay reproduce the committed epochs.

use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::window::Time;

/// State driven by [`run`].
pub trait Stage: 'static {
    type In: Clone + 'static;
    type Out: Clone + 'static;
    fn apply(&mut self, item: Self::In);
    /// Moves every pending change into `out`.
    fn emit(&mut self, out: &mut Vec<Self::Out>);
    /// Drops what retires at or before `frontier` (`None`: the input is complete).
    fn retire(&mut self, frontier: Option<Time>);
}

/// The least wall time between two evaluations of a stage.
pub const MIN_ROUND: Duration = Duration::from_millis(50);

/// Runs `stage` as an operator. `index` is told the worker index before the first input.
pub fn run<'s, S, P>(input: StreamVec<'s, Time, S::In>, pact: P, name: &str, make: impl FnOnce(usize) -> S) -> StreamVec<'s, Time, S::Out>
where
    S: Stage,
    P: ParallelizationContract<Time, Vec<S::In>>,
{
    let worker = input.scope().index();
    let mut stage = make(worker);
    let scope = input.scope();
    input.unary_frontier::<CapacityContainerBuilder<Vec<S::Out>>, _, _, _>(pact, name, move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut out = Vec::new();
        let mut last_round = Instant::now();
        move |(input, frontier), output| {
            input.for_each(|_time, data| {
                for item in data.drain(..) {
                    stage.apply(item);
                }
            });
            let Some(cap) = capability.as_mut() else { return };
            let upto = frontier.frontier().iter().next().copied();
            if upto.is_some_and(|f| f <= *cap.time()) {
                return;
            }
            let since = last_round.elapsed();
            if upto.is_some() && since < MIN_ROUND {
                activator.activate_after(MIN_ROUND - since);
                return;
            }
            last_round = Instant::now();
            stage.emit(&mut out);
            if !out.is_empty() {
                output.session(&*cap).give_container(&mut out);
                out.clear();
            }
            stage.retire(upto);
            match upto {
                Some(f) => cap.downgrade(&f),
                None => capability = None,
            }
        }
    })
}
