//! The checkpoint a batch carries, fed frame by frame without a daemon.

use super::*;
use crate::config::StageConfig;
use crate::delivery::{Delivery, Router};
use crate::positions::Positions;
use crate::stage::BuildContext;
use crate::stage::PipelineSpec;
use tokio::sync::mpsc;

const T: &str = "2024-03-27T08:30:08";

fn ctx(stages: &str) -> (DockerJobContext, mpsc::Receiver<Delivery>) {
    let (tx, rx) = mpsc::channel(64);
    let positions = Positions::in_memory();
    let metrics = Metrics::new();
    let stages: Vec<StageConfig> = serde_yaml_ng::from_str(stages).unwrap();
    let build = BuildContext {
        metrics: metrics.clone(),
        job: "docker".into(),
    };
    let ctx = DockerJobContext {
        source: crate::source::SourceContext {
            job: "docker".into(),
            router: Router::new(vec![tx], positions.clone()),
            positions,
            metrics,
            targets: crate::targets::Targets::new(),
            pipeline: PipelineSpec::build(&stages, &build).unwrap(),
            line_limit: crate::source::LineLimit::new(1024, true),
        },
        relabeler: Relabeler::new(&[]).unwrap(),
    };
    (ctx, rx)
}

fn container(ctx: &DockerJobContext) -> Container {
    let labels = Labels::from([("container".to_string(), "c".to_string())]);
    // The sender is dropped: a send the sinks make wait is given up, as when the agent stops.
    Container::new("abc".into(), Arc::new(labels), ctx, watch::channel(false).1)
}

/// A new logs request from the container's cursor.
fn session(c: &Container) -> Session {
    Session {
        resume: c.cursor,
        window: Window::new(c.cursor.since),
        index: 0,
    }
}

/// Feed frames `(nanos within second T, payload)` of a session.
fn feed(
    c: &mut Container,
    s: &mut Session,
    ctx: &DockerJobContext,
    frames: &[(u32, &str)],
) -> Vec<Line<Mark>> {
    let mut lines = Vec::new();
    for (nanos, payload) in frames {
        let frame = format!("{T}.{nanos:09}Z {payload}");
        c.take_frame(frame.as_bytes(), Stream::Stdout, s, ctx, &mut lines);
    }
    lines
}

/// Deliver, acknowledge the batch if one was sent, and return its lines and the saved cursor.
async fn deliver(
    c: &mut Container,
    ctx: &DockerJobContext,
    rx: &mut mpsc::Receiver<Delivery>,
    mut lines: Vec<Line<Mark>>,
) -> (Vec<String>, Cursor) {
    assert!(c.deliver(ctx, &mut lines, false).await);
    let mut got = Vec::new();
    if let Ok(batch) = rx.try_recv() {
        batch.ack();
        got = batch.batch.entries.iter().map(|e| e.line.clone()).collect();
    }
    let saved = ctx.positions.cursor("cursor-abc").unwrap_or_default();
    (got, Cursor::parse(&saved).unwrap_or_default())
}

#[tokio::test]
async fn the_checkpoint_stops_before_a_line_still_being_joined() {
    let (ctx, mut rx) = ctx("[]");
    let mut c = container(&ctx);
    let mut s = session(&c);
    let frames = [(1, "whole\n"), (2, "piece one "), (2, "piece two ")];
    let lines = feed(&mut c, &mut s, &ctx, &frames);
    let (got, cursor) = deliver(&mut c, &ctx, &mut rx, lines).await;
    assert_eq!(got, ["whole"]);
    assert_eq!((cursor.skip, cursor.last_ns % 1_000_000_000), (1, 1));

    // The rest of the line arrives: the checkpoint moves past all of it.
    let lines = feed(&mut c, &mut s, &ctx, &[(2, "end\n")]);
    let (got, cursor) = deliver(&mut c, &ctx, &mut rx, lines).await;
    assert_eq!(got, ["piece one piece two end"]);
    assert_eq!(cursor.skip, 4);
}

#[tokio::test]
async fn the_checkpoint_stops_before_a_line_a_stage_holds() {
    let (ctx, mut rx) = ctx("[{multiline: {firstline: '^start', max_wait_time: 1h}}]");
    let mut c = container(&ctx);
    let mut s = session(&c);
    let frames = [
        (1, "start 1\n"),
        (2, "  more\n"),
        (3, "start 2\n"),
        (4, "  held\n"),
    ];
    let lines = feed(&mut c, &mut s, &ctx, &frames);
    let (got, cursor) = deliver(&mut c, &ctx, &mut rx, lines).await;
    assert_eq!(got, ["start 1\n  more"]);
    assert_eq!(
        (cursor.skip, cursor.last_ns % 1_000_000_000),
        (2, 2),
        "resumes at `start 2`, which multiline holds"
    );
}

#[tokio::test]
async fn a_resumed_session_skips_what_was_read_and_empty_batches_commit_nothing() {
    let (ctx, mut rx) = ctx("[]");
    ctx.positions.commit(&Checkpoint::Cursor {
        key: "cursor-abc".into(),
        value: Cursor {
            last_ns: 1_711_528_208_000_000_002,
            since: 1_711_528_207,
            skip: 2,
        }
        .to_string(),
    });
    let mut c = container(&ctx);
    // The daemon answers from `since` on: two frames already shipped, then a new one.
    let mut s = session(&c);
    let lines = feed(&mut c, &mut s, &ctx, &[(1, "old 1\n"), (2, "old 2\n")]);
    let (got, cursor) = deliver(&mut c, &ctx, &mut rx, lines).await;
    assert!(got.is_empty() && cursor.skip == 2);
    let lines = feed(&mut c, &mut s, &ctx, &[(2, "new\n")]);
    let (got, cursor) = deliver(&mut c, &ctx, &mut rx, lines).await;
    assert_eq!(got, ["new"]);
    assert_eq!(cursor.skip, 3);

    // The stream breaks; the next session (same agent) gets all three again and ships nothing.
    let mut s = session(&c);
    let lines = feed(
        &mut c,
        &mut s,
        &ctx,
        &[(1, "old 1\n"), (2, "old 2\n"), (2, "new\n")],
    );
    assert!(lines.is_empty());
    let lines = feed(&mut c, &mut s, &ctx, &[(3, "newer\n")]);
    let (got, cursor) = deliver(&mut c, &ctx, &mut rx, lines).await;
    assert_eq!((got, cursor.skip), (vec!["newer".to_string()], 4));
}
