//! Splitting a byte stream into syslog messages ([RFC 6587](https://www.rfc-editor.org/rfc/rfc6587#section-3.4)).
//!
//! The framing is chosen from a connection's first byte, as Promtail does: a digit means octet
//! counting (`<length> <message>`, RFC 6587 §3.4.1 / RFC 5425), anything else non-transparent framing
//! (one message per line, §3.4.2). Both are read without ever holding more than `max_message_length`
//! (plus one read) of a message:
//! * a line longer than the limit is reported [`Frame::Oversized`] and skipped up to its newline;
//! * an octet-counted frame announcing more than the limit is reported and exactly its announced
//!   length is skipped, so the next frame is read where it starts;
//! * bytes where an octet count should start are reported [`Frame::Invalid`] and skipped to the next
//!   newline (Promtail's parser stops reading the connection there).
//!
//! The same [`Framer`] splits UDP datagrams (fed one at a time, each with `eof`), which Promtail also
//! runs through its stream parser.

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One message, without its trailer.
    Message(&'a [u8]),
    /// A message over the length limit (its length, or the part seen, in bytes), skipped.
    Oversized(usize),
    /// Bytes that are not a frame, skipped; says what was wrong.
    Invalid(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    OctetCounting,
    NonTransparent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    /// This many more bytes of an oversized octet-counted frame.
    Bytes(usize),
    /// Up to and including the next newline.
    Line,
}

/// Splits one connection's (or datagram's) bytes into frames.
pub struct Framer {
    max: usize,
    framing: Option<Framing>,
    buf: Vec<u8>,
    start: usize,
    skip: Skip,
}

/// The longest length prefix read (`u64::MAX` has 20 digits).
const MAX_LENGTH_DIGITS: usize = 20;

impl Framer {
    pub fn new(max_message_length: usize) -> Self {
        Framer {
            max: max_message_length,
            framing: None,
            buf: Vec::new(),
            start: 0,
            skip: Skip::None,
        }
    }

    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Start over, framing chosen again from the next byte (each UDP datagram).
    pub fn reset(&mut self) {
        self.framing = None;
        self.buf.clear();
        self.start = 0;
        self.skip = Skip::None;
    }

    /// Adds `data` and reports every complete frame to `on`; with `eof`, also what is left (the last
    /// line without its newline, or a truncated frame).
    pub fn feed(&mut self, data: &[u8], eof: bool, on: &mut dyn FnMut(Frame<'_>)) {
        self.buf.extend_from_slice(data);
        loop {
            let avail = &self.buf[self.start..];
            if avail.is_empty() {
                break;
            }
            match self.skip {
                Skip::Bytes(n) => {
                    let k = n.min(avail.len());
                    self.start += k;
                    self.skip = if k == n {
                        Skip::None
                    } else {
                        Skip::Bytes(n - k)
                    };
                    continue;
                }
                Skip::Line => {
                    match memchr::memchr(b'\n', avail) {
                        Some(i) => {
                            self.start += i + 1;
                            self.skip = Skip::None;
                        }
                        None => self.start = self.buf.len(),
                    }
                    continue;
                }
                Skip::None => {}
            }
            let framing = *self.framing.get_or_insert(if avail[0].is_ascii_digit() {
                Framing::OctetCounting
            } else {
                Framing::NonTransparent
            });
            let progressed = match framing {
                Framing::NonTransparent => self.line(eof, on),
                Framing::OctetCounting => self.counted(eof, on),
            };
            if !progressed {
                break;
            }
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && (self.start >= 64 * 1024 || eof) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if eof {
            // What could not be framed is gone with the stream.
            self.buf.clear();
            self.start = 0;
            self.skip = Skip::None;
        }
    }

    /// One newline-terminated message; false when more bytes are needed.
    fn line(&mut self, eof: bool, on: &mut dyn FnMut(Frame<'_>)) -> bool {
        let avail = &self.buf[self.start..];
        let (frame, used) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], i + 1),
            None if avail.len() > self.max => {
                on(Frame::Oversized(avail.len()));
                self.start = self.buf.len();
                self.skip = Skip::Line;
                return true;
            }
            None if eof => (avail, avail.len()),
            None => return false,
        };
        let frame = frame.strip_suffix(b"\r").unwrap_or(frame);
        if frame.len() > self.max {
            on(Frame::Oversized(frame.len()));
        } else if !frame.is_empty() {
            on(Frame::Message(frame));
        }
        self.start += used;
        true
    }

    /// One `<length> <message>` frame; false when more bytes are needed.
    fn counted(&mut self, eof: bool, on: &mut dyn FnMut(Frame<'_>)) -> bool {
        let avail = &self.buf[self.start..];
        // Some senders put a newline between frames (Promtail skips it too).
        if avail[0] == b'\n' || avail[0] == b'\r' {
            self.start += 1;
            return true;
        }
        let digits = avail
            .iter()
            .take(MAX_LENGTH_DIGITS + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == avail.len() && digits <= MAX_LENGTH_DIGITS && !eof {
            return false;
        }
        let length = std::str::from_utf8(&avail[..digits])
            .ok()
            .and_then(|d| d.parse::<usize>().ok());
        let length = match (length, avail[0], avail.get(digits)) {
            (Some(n), b'1'..=b'9', Some(b' ')) => n,
            _ => {
                on(Frame::Invalid(
                    "expecting an octet count followed by a space",
                ));
                self.skip = Skip::Line;
                return true;
            }
        };
        let body = digits + 1;
        if length > self.max {
            on(Frame::Oversized(length));
            self.start += body;
            self.skip = Skip::Bytes(length);
            return true;
        }
        if avail.len() < body + length {
            if eof {
                on(Frame::Invalid(
                    "the stream ended inside an octet-counted frame",
                ));
                self.start = self.buf.len();
                return true;
            }
            return false;
        }
        on(Frame::Message(&avail[body..body + length]));
        self.start += body + length;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum F {
        M(String),
        Big(usize),
        Bad,
    }

    /// Frames of `chunks` fed one by one (the last with eof).
    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<F> {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            framer.feed(chunk, i + 1 == chunks.len(), &mut |f| {
                out.push(match f {
                    Frame::Message(m) => F::M(String::from_utf8_lossy(m).into_owned()),
                    Frame::Oversized(n) => F::Big(n),
                    Frame::Invalid(_) => F::Bad,
                })
            });
        }
        out
    }

    fn m(s: &str) -> F {
        F::M(s.to_owned())
    }

    #[test]
    fn lines_split_anywhere_and_the_last_one_at_eof() {
        let got = frames(100, &[b"<1>a\n<2", b">b\r\n\n<3>c", b""]);
        assert_eq!(got, [m("<1>a"), m("<2>b"), m("<3>c")]);
        // Garbage first still means lines; the parser reports it.
        assert_eq!(frames(100, &[b"junk\n<1>a\n"]), [m("junk"), m("<1>a")]);
    }

    #[test]
    fn an_oversized_line_is_skipped_to_its_newline_without_being_held() {
        let mut framer = Framer::new(8);
        let mut got = Vec::new();
        let mut on = |f: Frame<'_>| got.push(format!("{f:?}"));
        framer.feed(b"<1>0123456789", false, &mut on);
        framer.feed(&[b'x'; 100_000], false, &mut on);
        assert!(framer.buf.len() < 64, "held {} bytes", framer.buf.len());
        framer.feed(b"yy\n<2>ok\n", false, &mut on);
        assert_eq!(got, ["Oversized(13)", "Message([60, 50, 62, 111, 107])"]);
        assert_eq!(frames(4, &[b"<1>abcdef\n<2>x\n"]), [F::Big(9), m("<2>x")]);
    }

    #[test]
    fn octet_counting_reads_exact_lengths_across_reads() {
        let got = frames(100, &[b"5 <1>ab6 <2>", b"c\nd\n6 <3>e f", b""]);
        assert_eq!(got, [m("<1>ab"), m("<2>c\nd"), m("<3>e f")]);
        assert_eq!(frames(100, &[b"3 <1>\n3 <2>"]), [m("<1>"), m("<2>")]);
    }

    #[test]
    fn an_oversized_counted_frame_is_skipped_by_its_length() {
        let mut big = b"20 <1>".to_vec();
        big.extend_from_slice(&[b'\n'; 17]); // newlines inside must not resync anything
        big.extend_from_slice(b"4 <2>x");
        assert_eq!(
            frames(10, &[&big[..9], &big[9..], b""]),
            [F::Big(20), m("<2>x")]
        );
    }

    #[test]
    fn garbage_in_counted_framing_is_skipped_to_the_next_line() {
        let got = frames(100, &[b"4 <1>a", b"xx yy\n", b"4 <2>b", b"0 \n4 <3>c"]);
        assert_eq!(got, [m("<1>a"), F::Bad, m("<2>b"), F::Bad, m("<3>c")]);
        let huge = format!("{} <1>a\n4 <2>b", "9".repeat(30));
        assert_eq!(frames(100, &[huge.as_bytes()]), [F::Bad, m("<2>b")]);
        assert_eq!(frames(100, &[b"9 <1>a"]), [F::Bad]);
    }
}
