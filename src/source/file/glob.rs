//! `__path__` globs as Promtail's doublestar matches them: `*`, `?`, `[…]`, `{a,b}` within one path
//! component and `**` across components; `__path_exclude__` removes matches. A glob is expanded by
//! walking from its longest literal directory prefix, so `/var/log/*.log` reads one directory only.

use std::io;
use std::path::{Path, PathBuf};

use globset::GlobBuilder;
use regex::bytes::{Regex, RegexBuilder};

#[derive(Debug, Clone)]
pub struct PathGlob {
    pattern: String,
    matcher: Regex,
    exclude: Option<Regex>,
    /// The literal directory the walk starts from.
    base: PathBuf,
    /// How deep below `base` a match can be; `None` with `**`.
    depth: Option<usize>,
}

fn is_meta(component: &str) -> bool {
    component.contains(['*', '?', '[', '{'])
}

/// The glob's regex, compiled here rather than by `Glob::compile_matcher`, which panics when the regex
/// exceeds globset's size limit (a `__path__` of a few hundred thousand characters): here that is a
/// config error. The regex is the one `GlobMatcher` would match paths' bytes with.
fn compile(pattern: &str) -> Result<Regex, String> {
    let invalid = |e: &dyn std::fmt::Display| {
        let shown = crate::goregex::shown(pattern);
        format!("invalid glob {shown}: {e}")
    };
    if pattern.len() > crate::goregex::MAX_PATTERN_LEN {
        return Err(invalid(&format_args!(
            "too long: at most {} bytes are allowed",
            crate::goregex::MAX_PATTERN_LEN
        )));
    }
    // globset turns nested `{a,{b,c}}` into a regex recursively: deep enough nesting would overflow
    // the stack. Real globs nest one or two levels.
    if alternate_depth(pattern) > MAX_ALTERNATE_DEPTH {
        return Err(invalid(&format_args!(
            "`{{...}}` alternatives nest deeper than {MAX_ALTERNATE_DEPTH} levels"
        )));
    }
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| invalid(e.kind()))?;
    RegexBuilder::new(glob.regex())
        .dot_matches_new_line(true)
        .size_limit(crate::goregex::SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => invalid(&format_args!(
                "too long or complex: its matcher would exceed {} bytes",
                crate::goregex::SIZE_LIMIT
            )),
            other => invalid(&other),
        })
}

/// How deeply `{` alternatives may nest in a glob.
const MAX_ALTERNATE_DEPTH: usize = 32;

/// The deepest nesting of `{` in `pattern` (escaped braces aside).
fn alternate_depth(pattern: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Make a path absolute against the working directory, as Promtail does with matches.
pub fn absolute(path: &str) -> String {
    let p = Path::new(path);
    if p.is_absolute() {
        return path.to_owned();
    }
    std::env::current_dir()
        .map(|d| d.join(p).to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_owned())
}

/// A `__path__` (or, with `exclude`, a `__path_exclude__`) glob that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GlobError {
    pub exclude: bool,
    pub message: String,
}

impl PathGlob {
    pub fn new(pattern: &str, exclude: Option<&str>) -> Result<Self, GlobError> {
        let pattern = absolute(pattern);
        let matcher = compile(&pattern).map_err(|message| GlobError {
            exclude: false,
            message,
        })?;
        let exclude = match exclude.filter(|e| !e.is_empty()) {
            Some(e) => Some(compile(&absolute(e)).map_err(|message| GlobError {
                exclude: true,
                message,
            })?),
            None => None,
        };
        let mut base = PathBuf::from("/");
        let components: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        let literal = components.iter().take_while(|c| !is_meta(c)).count();
        // The last component is the file name; the base is a directory.
        let dir_parts = literal.min(components.len().saturating_sub(1));
        for c in &components[..dir_parts] {
            base.push(c);
        }
        let rest = &components[dir_parts..];
        let depth = if rest.contains(&"**") || rest.iter().any(|c| c.contains("**")) {
            None
        } else {
            Some(rest.len())
        };
        Ok(PathGlob {
            pattern,
            matcher,
            exclude,
            base,
            depth,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The directory the watcher should watch, and whether recursively.
    pub fn watch_root(&self) -> (&Path, bool) {
        (&self.base, self.depth != Some(1))
    }

    /// Whether `path` (absolute) is a match that is not excluded.
    pub fn matches(&self, path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let path = path.as_os_str().as_bytes();
        self.matcher.is_match(path) && !self.exclude.as_ref().is_some_and(|e| e.is_match(path))
    }

    /// Every regular file matching now (symlinks followed), sorted; and the first error that may
    /// have hidden matches: a directory that could not be listed for now (out of descriptors, I/O).
    /// What is missing or unreadable for good (permissions) hides nothing that could be read.
    pub fn expand(&self) -> (Vec<PathBuf>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut hidden = None;
        let mut walk = walkdir::WalkDir::new(&self.base)
            .follow_links(true)
            .min_depth(1);
        if let Some(d) = self.depth {
            walk = walk.max_depth(d);
        }
        for entry in walk {
            match entry {
                Ok(entry) => {
                    if entry.file_type().is_file() && self.matches(entry.path()) {
                        out.push(entry.into_path());
                    }
                }
                Err(e) => {
                    // A symlink loop carries no I/O error: nothing hidden.
                    if let Some(io) = e.io_error().filter(|io| may_hide_matches(io)) {
                        hidden.get_or_insert_with(|| io::Error::new(io.kind(), e.to_string()));
                    }
                }
            }
        }
        out.sort();
        (out, hidden)
    }
}

/// Whether a walk error may have hidden files that exist: not for absence (a file or directory gone
/// meanwhile, a dangling symlink) nor for a directory that is not readable or not a directory.
fn may_hide_matches(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
    ) && !matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_errors_of_the_moment_may_hide_files() {
        let os = io::Error::from_raw_os_error;
        assert!(may_hide_matches(&os(libc::EMFILE)));
        assert!(may_hide_matches(&os(libc::ENFILE)));
        assert!(may_hide_matches(&os(libc::EIO)));
        assert!(!may_hide_matches(&os(libc::ENOENT)));
        assert!(!may_hide_matches(&os(libc::EACCES)));
        assert!(!may_hide_matches(&os(libc::ENOTDIR)));
    }

    #[test]
    fn expands_star_doublestar_braces_and_excludes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in [
            "a.log",
            "b.log",
            "c.txt",
            "sub/d.log",
            "sub/deep/e.log",
            "skip/f.log",
        ] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x\n").unwrap();
        }
        fs::create_dir_all(root.join("dir.log")).unwrap();
        let r = root.display();
        let names = |g: PathGlob| -> Vec<String> {
            let (paths, hidden) = g.expand();
            assert!(hidden.is_none(), "{hidden:?}");
            paths
                .iter()
                .map(|p| p.strip_prefix(root).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names(PathGlob::new(&format!("{r}/*.log"), None).unwrap()),
            ["a.log", "b.log"]
        );
        assert_eq!(
            names(PathGlob::new(&format!("{r}/**/*.log"), None).unwrap()),
            [
                "a.log",
                "b.log",
                "skip/f.log",
                "sub/d.log",
                "sub/deep/e.log"
            ]
        );
        assert_eq!(
            names(PathGlob::new(&format!("{r}/**/*.log"), Some(&format!("{r}/skip/*"))).unwrap()),
            ["a.log", "b.log", "sub/d.log", "sub/deep/e.log"]
        );
        assert_eq!(
            names(PathGlob::new(&format!("{r}/{{a,c}}.*"), None).unwrap()),
            ["a.log", "c.txt"]
        );
        assert_eq!(
            names(PathGlob::new(&format!("{r}/sub/d.log"), None).unwrap()),
            ["sub/d.log"]
        );
        let (paths, hidden) = PathGlob::new(&format!("{r}/nope/*.log"), None)
            .unwrap()
            .expand();
        assert!(
            paths.is_empty() && hidden.is_none(),
            "a missing directory hides nothing"
        );
    }

    #[test]
    fn a_huge_or_deeply_nested_glob_is_an_error_not_a_panic() {
        let huge = format!("/var/log/{}.log", "a*".repeat(250_000));
        let err = PathGlob::new(&huge, None).unwrap_err().message;
        assert!(err.contains("at most 262144"), "{err:.500}");
        assert!(err.len() < 500, "the message does not repeat the glob");
        // Under the length limit, but too big for the matcher: globset's `compile_matcher` panicked.
        let big = format!("/var/log/{}.log", "a*".repeat(100_000));
        let err = PathGlob::new(&big, None).unwrap_err().message;
        assert!(err.contains("too long or complex"), "{err:.500}");
        let nested = format!("/var/log/{}a{}", "{".repeat(100_000), "}".repeat(100_000));
        let err = PathGlob::new(&nested, None).unwrap_err();
        assert!(
            !err.exclude && err.message.contains("nest deeper than 32"),
            "{err:.500}"
        );
        let err = PathGlob::new("/var/log/*.log", Some("/var/log/[")).unwrap_err();
        assert!(err.exclude, "{err}");
        assert!(PathGlob::new("/var/log/{a,{b,c}}/*.log", None).is_ok());
        assert!(PathGlob::new("/var/log/[", None).is_err());
    }
}
