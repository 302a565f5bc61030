//! An ordered, bounded parallel map over segments, on scoped threads.
//!
//! Segments are independent once cut (each has its own nonce, codeword and piece roots), so
//! the coding work of one segment runs on one worker lane while the caller's thread reads the
//! next plaintext and writes the previous pieces out. Jobs go to the lanes round-robin and
//! come back in the same order, so the output is byte-identical whatever the lane count; at
//! most two jobs per lane are in flight, which keeps memory at a few segments' pieces.
//!
//! No async runtime: `std::thread::scope` ties every worker to the call, so a worker never
//! outlives the borrowed cipher or sinks, and an error anywhere stops the whole pipeline.

use std::sync::mpsc::sync_channel;

/// Jobs queued per lane beyond the one it works on.
const JOBS_IN_FLIGHT_PER_LANE: usize = 2;

/// Runs `work` on every job `next` yields, one lane per element of `lanes`, and hands each
/// result to `done` in job order. With one lane everything runs on the caller's thread.
///
/// `next` and `done` run on the caller's thread; an error from either, or one that `work`
/// returns, ends the run with that error (jobs still queued are dropped). `lost` names the
/// error when a lane died without answering (it panicked).
pub(crate) fn ordered<S, J, R, E>(
    lanes: &mut [S],
    work: &(dyn Fn(&mut S, J) -> Result<R, E> + Sync),
    mut next: impl FnMut() -> Result<Option<J>, E>,
    mut done: impl FnMut(R) -> Result<(), E>,
    lost: impl Fn() -> E,
) -> Result<(), E>
where
    S: Send,
    J: Send,
    R: Send,
    E: Send,
{
    if lanes.len() <= 1 {
        let Some(lane) = lanes.first_mut() else {
            return Err(lost());
        };
        while let Some(job) = next()? {
            done(work(lane, job)?)?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let mut inputs = Vec::with_capacity(lanes.len());
        let mut outputs = Vec::with_capacity(lanes.len());
        for lane in lanes.iter_mut() {
            let (job_tx, job_rx) = sync_channel::<J>(1);
            let (result_tx, result_rx) = sync_channel::<Result<R, E>>(1);
            scope.spawn(move || {
                // A lane whose job failed goes on with the (at most two) jobs queued behind
                // it: the caller stops when it reaches the error in job order, and a lane
                // that left early would make that error look like a lost lane.
                while let Ok(job) = job_rx.recv() {
                    if result_tx.send(work(lane, job)).is_err() {
                        break;
                    }
                }
            });
            inputs.push(job_tx);
            outputs.push(result_rx);
        }
        let width = inputs.len();
        let bound = width * JOBS_IN_FLIGHT_PER_LANE;
        let (mut sent, mut received) = (0usize, 0usize);
        let mut exhausted = false;
        // Returning drops the channels, which ends every worker before the scope joins.
        loop {
            if sent - received >= bound || (exhausted && received < sent) {
                let result = outputs[received % width].recv().map_err(|_| lost())?;
                received += 1;
                done(result?)?;
                continue;
            }
            if exhausted {
                return Ok(());
            }
            match next()? {
                Some(job) => {
                    inputs[sent % width].send(job).map_err(|_| lost())?;
                    sent += 1;
                }
                None => exhausted = true,
            }
        }
    })
}

/// Lanes worth running here: the machine's cores, at most `limit`, at least one.
pub fn available_lanes(limit: usize) -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, limit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lanes: usize, jobs: u64, fail_at: Option<u64>) -> Result<Vec<u64>, String> {
        let mut states = vec![0u64; lanes];
        let mut produced = 0u64;
        let mut out = Vec::new();
        ordered(
            &mut states,
            &|count: &mut u64, job: u64| {
                *count += 1;
                if Some(job) == fail_at {
                    return Err(format!("job {job} failed"));
                }
                Ok(job * job)
            },
            || {
                produced += 1;
                Ok((produced <= jobs).then_some(produced - 1))
            },
            |r| {
                out.push(r);
                Ok(())
            },
            || "lost".to_string(),
        )?;
        Ok(out)
    }

    #[test]
    fn results_come_back_in_job_order_whatever_the_lane_count() {
        let expected: Vec<u64> = (0..100).map(|j| j * j).collect();
        for lanes in [1, 2, 3, 8] {
            assert_eq!(run(lanes, 100, None).unwrap(), expected, "{lanes} lanes");
        }
        assert_eq!(run(4, 0, None).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn an_error_in_a_lane_ends_the_run_with_that_error() {
        for lanes in [1, 2, 5] {
            assert_eq!(run(lanes, 100, Some(37)), Err("job 37 failed".to_string()));
        }
    }

    #[test]
    fn no_lanes_is_an_error_not_a_hang() {
        let mut states: Vec<()> = Vec::new();
        let result = ordered(
            &mut states,
            &|_: &mut (), j: u8| Ok::<u8, String>(j),
            || Ok(Some(1u8)),
            |_| Ok(()),
            || "no lanes".to_string(),
        );
        assert_eq!(result, Err("no lanes".to_string()));
    }
}
