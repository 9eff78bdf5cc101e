//! Sources: where lines come from. Each discovers its targets and reads them; what it read goes
//! through its job's [`feed::Feed`] (the pipeline, the router, the checkpoint), the same for all.

use std::sync::Arc;

use crate::delivery::Router;
use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::stage::PipelineSpec;
use crate::targets::Targets;

pub mod docker;
pub mod feed;
pub mod file;
pub mod gelf;
pub mod intake;
pub mod journal;
pub mod loki_push;
pub mod otlp;
pub mod stdin;
pub mod syslog;

/// With no `max_line_size` configured, lines are still cut here: Loki itself refuses far shorter lines.
pub const HARD_LINE_LIMIT: usize = 16 * 1024 * 1024;

/// What every source of one job shares, whatever it reads.
pub struct SourceContext {
    pub job: Arc<str>,
    pub router: Router,
    pub positions: Positions,
    pub metrics: Arc<Metrics>,
    /// Where the job's targets and their progress show (`/targets`).
    pub targets: Arc<Targets>,
    pub pipeline: PipelineSpec,
    pub line_limit: LineLimit,
}

impl SourceContext {
    /// A feed of this job's (its pipeline, its router, its line limit) for one reader, with `ledger`.
    pub fn feed<L: feed::Ledger>(&self, ledger: L) -> feed::Feed<L> {
        feed::Feed::new(self.pipeline.instantiate(), self.router.clone(), ledger).limit_lines(
            self.line_limit,
            &self.job,
            &self.metrics,
        )
    }
}

/// `limits_config.max_line_size` and `max_line_size_truncate`, as a source applies them.
#[derive(Debug, Clone, Copy)]
pub struct LineLimit {
    /// Bytes; lines longer are cut (`truncate`) or dropped.
    pub max: usize,
    pub truncate: bool,
    /// Whether `max` is the configured `max_line_size` (else the agent's [`HARD_LINE_LIMIT`]).
    pub configured: bool,
}

impl LineLimit {
    /// Promtail's `max_line_size` (0: none) and `max_line_size_truncate`. Without a limit, lines are
    /// still cut at [`HARD_LINE_LIMIT`].
    pub fn new(max_line_size: usize, truncate: bool) -> Self {
        match max_line_size {
            0 => LineLimit {
                max: HARD_LINE_LIMIT,
                truncate: true,
                configured: false,
            },
            max => LineLimit {
                max,
                truncate,
                configured: true,
            },
        }
    }
}
