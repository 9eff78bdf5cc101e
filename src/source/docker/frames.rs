//! From the frames of Docker's logs API to log lines, as Promtail's docker target makes them
//! (`targets/docker/target.go`, compat reference §3.3).
//!
//! With `timestamps=1` every frame is `<RFC3339Nano stamp> <payload>`. The daemon's copier cuts a line
//! longer than 16 KiB into 16 KiB pieces that share one stamp; each piece is its own frame and only the
//! last ends with `\n`. [`Assembler`] joins them per stream until a frame ends with `\n`, the stamp
//! changes, or the line outgrows the size limit (then the line so far is sent and the rest of it dropped);
//! trailing `\r` and `\n` are cut from every piece.
//!
//! A TTY container's log has no frame headers: the API sends the frames back to back and the client
//! library splits them at `\n`, so the pieces of a long line arrive glued together with their stamps
//! inside. [`split_tty`] cuts them apart again where a piece's 16 KiB payload ends and a stamp follows,
//! the boundary Docker's copier makes (Promtail's `NoHeaderFramedStdCopy` relies on the same size).

use crate::stage::parsing::rfc3339;

/// The payload size of the pieces Docker's copier cuts long lines into.
pub const PIECE: usize = 16 * 1024;

/// Promtail's bound on a joined line when `limits_config.max_line_size` is 0.
pub const SOFT_LINE_LIMIT: usize = 256 * 1024;

/// Split `<stamp> <payload>`: the stamp as Unix nanoseconds and the payload.
pub fn split_stamp(frame: &[u8]) -> Option<(i64, &[u8])> {
    let space = memchr::memchr(b' ', frame)?;
    let stamp = std::str::from_utf8(&frame[..space]).ok()?;
    Some((rfc3339::parse_nano(stamp)?, &frame[space + 1..]))
}

/// Cut a TTY message (one or more frames glued together, see the module doc) into frames.
pub fn split_tty(mut msg: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if msg.is_empty() {
            return None;
        }
        let end = tty_frame_end(msg);
        let (frame, rest) = msg.split_at(end);
        msg = rest;
        Some(frame)
    })
}

fn tty_frame_end(msg: &[u8]) -> usize {
    let Some(space) = memchr::memchr(b' ', msg) else {
        return msg.len();
    };
    let cut = space + 1 + PIECE;
    if msg.len() > cut && split_stamp(&msg[cut..]).is_some() {
        cut
    } else {
        msg.len()
    }
}

/// One assembled line, with the mark of the frame it started in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<M> {
    pub ts_ns: i64,
    pub text: Vec<u8>,
    pub mark: M,
}

/// What [`Assembler::push`] made of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Ok,
    /// No stamp, and no line being joined that it could belong to: dropped (Promtail counts these in
    /// `promtail_docker_target_parsing_errors_total`).
    Unparsable,
    /// A joined line outgrew the limit: what was joined so far was sent, the rest is dropped.
    Oversized,
}

/// Joins one stream's frames into lines. `M` marks where a line starts (the caller's resume point).
#[derive(Debug)]
pub struct Assembler<M> {
    limit: usize,
    acc: Vec<u8>,
    /// Stamp and mark of the line being joined (`acc`), kept after it is sent to detect a new line.
    cur: Option<(i64, M)>,
    discard_rest: bool,
}

impl<M: Copy> Assembler<M> {
    pub fn new(limit: usize) -> Self {
        Assembler {
            limit,
            acc: Vec::new(),
            cur: None,
            discard_rest: false,
        }
    }

    /// The mark of the line being joined, if any: it is not sent yet.
    pub fn pending(&self) -> Option<M> {
        if self.acc.is_empty() {
            None
        } else {
            self.cur.map(|(_, m)| m)
        }
    }

    pub fn push(&mut self, frame: &[u8], mark: M, out: &mut Vec<Line<M>>) -> Pushed {
        let (ts, payload) = match split_stamp(frame) {
            Some(split) => split,
            // A piece of a line being joined whose stamp is unreadable still belongs to it.
            None => match self.cur {
                Some((ts, _)) if !self.acc.is_empty() => (ts, frame),
                _ => return Pushed::Unparsable,
            },
        };
        if self.cur.map(|(t, _)| t) != Some(ts) {
            // A new stamp is a new line, even if the last one never got its `\n`.
            self.discard_rest = false;
            self.flush(out);
        }
        let eol = payload.last() == Some(&b'\n');
        if self.discard_rest {
            self.discard_rest = !eol;
            return Pushed::Ok;
        }
        let text = trim_newlines(payload);
        if self.acc.is_empty() && eol {
            out.push(Line {
                ts_ns: ts,
                text: text.to_vec(),
                mark,
            });
            return Pushed::Ok;
        }
        if self.acc.is_empty() {
            self.cur = Some((ts, mark));
        }
        self.acc.extend_from_slice(text);
        if eol || self.acc.len() > self.limit {
            self.discard_rest = !eol;
            self.flush(out);
            if !eol {
                return Pushed::Oversized;
            }
        }
        Pushed::Ok
    }

    /// Send the line being joined, if any (end of the stream, or a new line began).
    pub fn flush(&mut self, out: &mut Vec<Line<M>>) {
        if self.acc.is_empty() {
            return;
        }
        if let Some((ts, mark)) = self.cur {
            out.push(Line {
                ts_ns: ts,
                text: std::mem::take(&mut self.acc),
                mark,
            });
        }
    }
}

/// Go's `strings.TrimRight(s, "\r\n")`.
fn trim_newlines(mut s: &[u8]) -> &[u8] {
    while let Some((b'\r' | b'\n', rest)) = s.split_last() {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2024-03-27T08:30:08.138460761Z";
    const T2: &str = "2024-03-27T08:30:08.138460999Z";

    fn frame(ts: &str, payload: &str) -> Vec<u8> {
        format!("{ts} {payload}").into_bytes()
    }

    fn lines(frames: &[Vec<u8>], limit: usize) -> (Vec<(String, u32)>, Vec<Pushed>) {
        let mut a = Assembler::new(limit);
        let mut out = Vec::new();
        let mut pushed = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            pushed.push(a.push(f, i as u32, &mut out));
        }
        a.flush(&mut out);
        let text = out
            .into_iter()
            .map(|l| (String::from_utf8(l.text).unwrap(), l.mark))
            .collect();
        (text, pushed)
    }

    #[test]
    fn stamps_parse_to_nanoseconds() {
        assert_eq!(
            split_stamp(b"2024-03-27T08:30:08.138460761Z hello\n"),
            Some((1_711_528_208_138_460_761, &b"hello\n"[..]))
        );
        assert_eq!(split_stamp(b"hello world"), None);
        assert_eq!(split_stamp(b"nospace"), None);
    }

    #[test]
    fn whole_lines_lose_their_line_endings_only() {
        let (got, _) = lines(
            &[frame(T1, "a\r\n"), frame(T2, " b \n"), frame(T2, "\n")],
            100,
        );
        assert_eq!(got, [("a".into(), 0), (" b ".into(), 1), ("".into(), 2)]);
    }

    #[test]
    fn pieces_sharing_a_stamp_are_joined_until_the_newline() {
        let (got, _) = lines(
            &[
                frame(T1, "aaa"),
                frame(T1, "bbb"),
                frame(T1, "c\n"),
                frame(T2, "next\n"),
            ],
            100,
        );
        assert_eq!(got, [("aaabbbc".into(), 0), ("next".into(), 3)]);
    }

    #[test]
    fn a_new_stamp_ends_an_unfinished_line() {
        let (got, _) = lines(&[frame(T1, "no newline"), frame(T2, "x\n")], 100);
        assert_eq!(got, [("no newline".into(), 0), ("x".into(), 1)]);
        // And the end of the stream sends what is left.
        let (got, _) = lines(&[frame(T1, "tail")], 100);
        assert_eq!(got, [("tail".into(), 0)]);
    }

    #[test]
    fn an_oversized_line_is_sent_up_to_the_limit_and_the_rest_dropped() {
        let (got, pushed) = lines(
            &[
                frame(T1, "12345"),
                frame(T1, "67890"),
                frame(T1, "dropped"),
                frame(T1, "dropped too\n"),
                frame(T2, "next\n"),
            ],
            8,
        );
        assert_eq!(got, [("1234567890".into(), 0), ("next".into(), 4)]);
        assert_eq!(pushed[1], Pushed::Oversized);
    }

    #[test]
    fn frames_without_a_stamp_are_dropped_unless_they_continue_a_line() {
        let (got, pushed) = lines(&[b"garbage\n".to_vec()], 100);
        assert!(got.is_empty());
        assert_eq!(pushed, [Pushed::Unparsable]);
        let (got, _) = lines(&[frame(T1, "start "), b"cont\n".to_vec()], 100);
        assert_eq!(got, [("start cont".into(), 0)]);
    }

    #[test]
    fn tty_messages_are_cut_where_a_piece_ends_and_a_stamp_follows() {
        let long = "y".repeat(PIECE);
        let msg = format!("{T1} {long}{T1} tail\r\n");
        let frames: Vec<&[u8]> = split_tty(msg.as_bytes()).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1], format!("{T1} tail\r\n").as_bytes());
        let (got, _) = lines(
            &frames.iter().map(|f| f.to_vec()).collect::<Vec<_>>(),
            SOFT_LINE_LIMIT,
        );
        assert_eq!(got, [(format!("{long}tail"), 0)]);
        // A line of exactly one piece plus text that is no stamp stays whole.
        let msg = format!("{T1} {long}not a stamp\r\n");
        assert_eq!(split_tty(msg.as_bytes()).count(), 1);
    }
}
