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
}

impl Bar {
    fn new() -> Bar {
        Bar {
            bar: Mutex::new(None),
        }
    }
}

impl Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        let style = ProgressStyle::with_template(
            "{msg:>8} [{bar:40.cyan/blue}] {pos}/{len} ({percent}%, {eta} left)",
        )
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
            }),
        }
    }

    fn line(s: &LineState) {
        let pct = (s.done * 100).checked_div(s.total).unwrap_or(100);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}: {}/{} ({pct}%)", s.label, s.done, s.total);
    }
}

impl Progress for Lines {
    fn start(&self, label: &str, total: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.label = label.to_string();
            s.total = total;
            s.done = 0;
            s.last = Instant::now();
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
        if let Ok(s) = self.state.lock()
            && !s.label.is_empty()
        {
            Lines::line(&s);
        }
    }
}
