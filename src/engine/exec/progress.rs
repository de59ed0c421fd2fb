//! Progress shown to the person running a command: an indicatif bar on a terminal, plain lines
//! on stderr otherwise (logs, CI), or nothing. What other processes see — the job's done/total
//! and the `run_progress` sync-log entries — is written by the executor, not here.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
pub trait Progress: Send + Sync {
    /// A phase with a known amount of work begins (`total` units).
    fn start(&self, label: &str, total: u64);
    /// `done` units of the current phase are done.
    fn set(&self, done: u64);
    /// A line of information (reading, planning, a notice).
    fn message(&self, text: &str);
    /// The phase ended.
    fn finish(&self);
    /// The next phase cannot take less than `least` in all (the target's request budget bounds
    /// it): its time left is never shown below that share of it.
    fn at_least(&self, least: Duration) {
        let _ = least;
    }
}

/// A long duration in words for a person, minutes rounded up: `2 h 30 min`, `4 min`, `20 s`.
pub(crate) fn left_words(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        return format!("{secs} s");
    }
    let mins = secs.div_ceil(60);
    match (mins / 60, mins % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The time left of a phase `done` of `total` in: what the rate so far says (`by_rate`), but
/// never less than the budget's share of what is left.
fn time_left(by_rate: Duration, least: Duration, done: u64, total: u64) -> Duration {
    if total == 0 {
        return by_rate;
    }
    let rest = total.saturating_sub(done) as f64 / total as f64;
    by_rate.max(least.mul_f64(rest))
}

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Always a bar.
    Bar,
    /// Always plain lines.
    Lines,
    /// Nothing.
    Silent,
}

impl ProgressMode {
    /// The progress display for this mode.
    pub fn build(self) -> Box<dyn Progress> {
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => Box::new(Bar::new()),
            ProgressMode::Auto | ProgressMode::Lines => Box::new(Lines::new()),
            ProgressMode::Bar => Box::new(Bar::new()),
            ProgressMode::Silent => Box::new(Silent),
        }
    }
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _label: &str, _total: u64) {}
    fn set(&self, _done: u64) {}
    fn message(&self, _text: &str) {}
    fn finish(&self) {}
}

/// An indicatif bar on stderr.
#[derive(Debug)]
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    least: Mutex<Duration>,
}

impl Bar {
    fn new() -> Bar {
        Bar {
            bar: Mutex::new(None),
            least: Mutex::new(Duration::ZERO),
        }
    }
}

impl Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        let least = self
            .least
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        let style = ProgressStyle::with_template(
            "{msg:>8} [{bar:40.cyan/blue}] {pos}/{len} ({percent}%, {left} left)",
        )
        .map(|s| {
            s.with_key(
                "left",
                move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let total = state.len().unwrap_or(0);
                    let d = time_left(state.eta(), least, state.pos(), total);
                    let _ = w.write_str(&left_words(d));
                },
            )
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut slot) = self.bar.lock()
            && let Some(old) = slot.replace(bar)
        {
            old.finish();
        }
    }

    fn set(&self, done: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.set_position(done);
        }
    }

    fn message(&self, text: &str) {
        match self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish();
        }
    }

    fn at_least(&self, least: Duration) {
        if let Ok(mut l) = self.least.lock() {
            *l = least;
        }
    }
}

/// Plain lines on stderr: one when a phase starts, then at most one every two seconds, and one
/// at the end.
#[derive(Debug)]
pub struct Lines {
    state: Mutex<LineState>,
}

#[derive(Debug)]
struct LineState {
    label: String,
    total: u64,
    done: u64,
    last: Instant,
    /// When the phase started.
    began: Instant,
    /// The least the phase takes in all (the budget), for the time left.
    least: Duration,
}

/// Least time between two progress lines.
const LINE_EVERY: Duration = Duration::from_secs(2);

impl Lines {
    fn new() -> Lines {
        Lines {
            state: Mutex::new(LineState {
                label: String::new(),
                total: 0,
                done: 0,
                last: Instant::now(),
                began: Instant::now(),
                least: Duration::ZERO,
            }),
        }
    }

    fn line(s: &LineState) {
        let pct = (s.done * 100).checked_div(s.total).unwrap_or(100);
        let mut err = std::io::stderr().lock();
        // A time left only once the budget says something the count cannot (a long run).
        let left = if s.least.is_zero() || s.done >= s.total {
            String::new()
        } else {
            let elapsed = s.began.elapsed();
            let by_rate = match s.done {
                0 => Duration::ZERO,
                d => elapsed.mul_f64(s.total.saturating_sub(d) as f64 / d as f64),
            };
            format!(
                ", about {} left",
                left_words(time_left(by_rate, s.least, s.done, s.total))
            )
        };
        let _ = writeln!(err, "{}: {}/{} ({pct}%{left})", s.label, s.done, s.total);
    }
}

impl Progress for Lines {
    fn start(&self, label: &str, total: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.label = label.to_string();
            s.total = total;
            s.done = 0;
            s.last = Instant::now();
            s.began = Instant::now();
            Lines::line(&s);
        }
    }

    fn set(&self, done: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.done = done;
            if s.last.elapsed() >= LINE_EVERY {
                s.last = Instant::now();
                Lines::line(&s);
            }
        }
    }

    fn message(&self, text: &str) {
        eprintln!("{text}");
    }

    fn finish(&self) {
        if let Ok(mut s) = self.state.lock()
            && !s.label.is_empty()
        {
            Lines::line(&s);
            s.least = Duration::ZERO;
        }
    }

    fn at_least(&self, least: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.least = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_never_falls_below_the_budgets_share() {
        let hour = Duration::from_secs(3600);
        // Fast so far (1 min left by the rate), but the budget needs an hour for the whole
        // phase: half done, half an hour left.
        assert_eq!(
            time_left(Duration::from_secs(60), hour, 50, 100),
            Duration::from_secs(1800)
        );
        // Slower than the budget: the rate wins.
        assert_eq!(time_left(2 * hour, hour, 50, 100), 2 * hour);
        assert_eq!(time_left(Duration::ZERO, hour, 100, 100), Duration::ZERO);
        assert_eq!(left_words(Duration::from_secs(9000)), "2 h 30 min");
        assert_eq!(left_words(Duration::from_secs(20)), "20 s");
    }
}
