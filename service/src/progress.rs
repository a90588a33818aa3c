//! Progress bars for long CLI jobs (`export`, `import`, `rebuild-rollups`, `seal-digests`,
//! `teiten-sensor --read`). Bars are drawn on standard error only when it is a terminal;
//! otherwise they are hidden and change no output. Every bar belongs to one process-wide
//! [`indicatif::MultiProgress`], which [`crate::logging`] suspends while it writes a line.

use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    // `ProgressDrawTarget::stderr()` draws nothing when standard error is not a terminal.
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Runs `f` with the bars cleared from the terminal, then redraws them.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match MULTI_READY.get() {
        Some(()) => multi().suspend(f),
        None => f(),
    }
}

/// Set once a bar exists, so that logging without bars never touches the terminal state.
static MULTI_READY: OnceLock<()> = OnceLock::new();

/// Adds a bar; one dropped unfinished (a job that failed) is cleared, so that the error
/// below it reads cleanly.
fn add(bar: ProgressBar) -> ProgressBar {
    let _ = MULTI_READY.set(());
    multi().add(bar.with_finish(ProgressFinish::AndClear))
}

/// A bar of `len` items, labelled `what` (e.g. "importing"), with a count and an ETA.
pub fn items(len: u64, what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta}) {prefix}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = add(ProgressBar::new(len).with_style(style));
    bar.set_message(what.to_owned());
    bar
}

/// A bar of `len` bytes, labelled `what` (e.g. "reading"), with rate and ETA.
pub fn bytes(len: u64, what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ({eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = add(ProgressBar::new(len).with_style(style));
    bar.set_message(what.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bars count whether or not they are drawn (under `cargo test` standard error is
    /// usually not a terminal, and they are hidden); `suspend` runs its closure with and
    /// without bars.
    #[test]
    fn bars_count_and_suspend_runs_the_closure() {
        assert_eq!(suspend(|| 1 + 1), 2);
        let b = items(3, "testing");
        b.inc(2);
        assert_eq!(b.position(), 2);
        assert_eq!(suspend(|| 3), 3);
        b.finish_and_clear();
        let y = bytes(100, "reading");
        y.set_position(50);
        assert_eq!(y.position(), 50);
        y.finish_and_clear();
    }
}
