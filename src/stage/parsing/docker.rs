//! `docker`: read a line of Docker's `json-file` log driver (Promtail's `NewDocker` in
//! `extensions.go`, docs `stages/docker.md`, compat reference §5.1). It is Promtail's fixed sequence
//!
//! ```yaml
//! - json: {expressions: {output: log, stream: stream, timestamp: time}}
//! - labels: {stream:}
//! - timestamp: {source: timestamp, format: RFC3339Nano}   # action_on_failure: fudge
//! - output: {source: output}
//! ```
//!
//! run as one stage: `{"log":"msg\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}` becomes
//! the line `msg\n` (Docker's trailing newline is **kept**, as Promtail keeps it), the label
//! `stream="stderr"` and that timestamp. `output`, `stream` and `timestamp` are left in `extracted`.
//! A line that is not JSON keeps its text and labels; its timestamp is fudged (the stream's last good
//! one plus 1ns) once the stream has had a good one.
//!
//! Docker splits lines longer than 16 KiB into several JSON lines, each but the last without the
//! trailing `\n`. Promtail's docker *stage* does not join them, and neither does this one: each piece
//! is its own entry. (Promtail's docker *target* joins them; that is the docker source's business.)
//! The body is ignored (`docker: {}`).

use std::sync::{Arc, LazyLock};

use super::container::{self, Timestamps};
use super::json::{Extractor, Slots};
use crate::stage::{Item, Stage, StageFactory};

static EXTRACTOR: LazyLock<Arc<Extractor>> = LazyLock::new(|| {
    let expressions = [
        ("output", "log"),
        ("stream", "stream"),
        ("timestamp", "time"),
    ]
    .map(|(k, e)| (k.to_owned(), e.to_owned()));
    Arc::new(Extractor::new(&expressions).expect("docker's expressions compile"))
});

pub fn factory() -> Arc<dyn StageFactory> {
    Arc::new(DockerFactory)
}

struct DockerFactory;

impl StageFactory for DockerFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(Docker {
            extractor: EXTRACTOR.clone(),
            slots: Slots::default(),
            timestamps: Timestamps::default(),
        })
    }
}

struct Docker {
    extractor: Arc<Extractor>,
    slots: Slots,
    timestamps: Timestamps,
}

impl Stage for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        // A malformed line leaves `extracted` as it was; the later steps then find nothing to use
        // (unless labels of the same names were there), exactly as in Promtail.
        let _ = self
            .extractor
            .extract(&item.line, &mut self.slots, &mut item.extracted);
        container::label_stream(&mut item);
        self.timestamps.apply(&mut item, "timestamp");
        container::output(&mut item, "output");
        out.push(item);
    }
}
