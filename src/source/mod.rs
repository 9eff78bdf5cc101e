//! Sources: where lines come from. Each discovers its targets, relabels them, runs the pipeline on
//! its own task and hands batches to the [`Router`](crate::delivery::Router) with their checkpoint.

pub mod docker;
pub mod feed;
pub mod file;
pub mod journal;
pub mod stdin;
