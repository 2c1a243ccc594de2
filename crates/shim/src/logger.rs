//! logfmt logging to containerd's shim log (the `log` FIFO of the bundle)
//! or to stderr for the one-shot actions.
//!
//! The `delete` action holds its lines back ([`init_held`]): containerd
//! runs `<shim> delete` after every shim exit, a normal Task Delete
//! included, and logs whatever it writes on stderr as a warning
//! (`cleanup warnings ...`). Lines below warn are kept in memory until the
//! first warn or error; that one writes them all, in order, and the rest
//! follow as they come. A delete with nothing for an operator to act on
//! writes nothing at all.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use robust_cleanup::logfmt::quote;

pub struct Logger {
    out: Mutex<Box<dyn Write + Send>>,
    level: log::LevelFilter,
    namespace: String,
    /// Lines below warn not written yet (`Some` until the first warn of a
    /// held logger; `None`: every line is written as it comes).
    held: Mutex<Option<Vec<String>>>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level && !m.target().starts_with("ttrpc")
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        let body = if msg.starts_with("msg=") {
            msg
        } else {
            format!("msg={}", quote(&msg))
        };
        let line = format!(
            "time=\"{}\" level={} {body} namespace={} runtime=io.containerd.robust.v2\n",
            rfc3339(SystemTime::now()),
            level_name(r.level()),
            self.namespace
        );
        let earlier = match self.held.lock() {
            Ok(mut held) => match held.as_mut() {
                Some(h) if r.level() > log::Level::Warn => {
                    h.push(line);
                    return;
                }
                Some(_) => held.take().unwrap_or_default(),
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        if let Ok(mut out) = self.out.lock() {
            // A full FIFO (containerd not reading) drops the line rather
            // than blocking the shim.
            for l in earlier.iter().chain(std::iter::once(&line)) {
                let _ = out.write_all(l.as_bytes());
            }
        }
    }

    fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}

fn level_name(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

impl Logger {
    fn new(
        out: Box<dyn Write + Send>,
        level: log::LevelFilter,
        namespace: &str,
        held: bool,
    ) -> Self {
        Logger {
            out: Mutex::new(out),
            level,
            namespace: namespace.to_string(),
            held: Mutex::new(held.then(Vec::new)),
        }
    }
}

fn install(logger: Logger) {
    let level = logger.level;
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

/// Install the logger writing every line to `out`.
pub fn init(out: Box<dyn Write + Send>, level: log::LevelFilter, namespace: &str) {
    install(Logger::new(out, level, namespace, false));
}

/// Install the logger writing to `out` only once something is logged at
/// warn or above (then the lines held so far first): see the module docs.
pub fn init_held(out: Box<dyn Write + Send>, level: log::LevelFilter, namespace: &str) {
    install(Logger::new(out, level, namespace, true));
}

/// Open the bundle's `log` FIFO without ever blocking: read-write open of a
/// FIFO does not wait for a reader, and non-blocking writes drop lines when
/// nobody reads.
pub fn open_log_fifo(path: &std::path::Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()
}

/// `SystemTime` as RFC 3339 UTC with microseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A shared buffer the logger writes to.
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A runtime's error with quotes and a newline, logged as the service
    /// logs one (`error=` quoted) and as a bare message: each record is one
    /// logfmt line, and the message reads back whole.
    #[test]
    fn a_message_with_quotes_and_newlines_is_one_logfmt_value() {
        use log::Log;
        let buf = Buf::default();
        let logger = Logger::new(
            Box::new(buf.clone()),
            log::LevelFilter::Info,
            "default",
            false,
        );
        let e = "runc create failed: exec: \"/x\": not found\nsecond line \\ end";
        let record = |args: std::fmt::Arguments| {
            logger.log(
                &log::Record::builder()
                    .args(args)
                    .level(log::Level::Warn)
                    .build(),
            )
        };
        record(format_args!("msg=\"rpc failed\" id=c1 error={}", quote(e)));
        record(format_args!("bare {e}"));
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let first = robust_cleanup::logfmt::parse(lines[0]).expect(lines[0]);
        let get = |pairs: &[(String, String)], k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(&first, "error").as_deref(), Some(e));
        assert_eq!(get(&first, "id").as_deref(), Some("c1"));
        assert_eq!(
            get(&first, "runtime").as_deref(),
            Some("io.containerd.robust.v2")
        );
        let second = robust_cleanup::logfmt::parse(lines[1]).expect(lines[1]);
        assert_eq!(get(&second, "msg"), Some(format!("bare {e}")));
    }

    fn log_at(logger: &Logger, level: log::Level, msg: &str) {
        use log::Log;
        logger.log(
            &log::Record::builder()
                .args(format_args!("msg={} id=c1", quote(msg)))
                .level(level)
                .build(),
        );
    }

    fn written(buf: &Buf) -> Vec<String> {
        String::from_utf8(buf.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| l.split(" level=").nth(1).unwrap_or(l).to_string())
            .collect()
    }

    /// A held logger writes nothing while only info and debug come; the
    /// first warning writes the held lines, in order, then itself; later
    /// lines are written as they come.
    #[test]
    fn held_lines_are_written_only_after_a_warning() {
        let buf = Buf::default();
        let logger = Logger::new(Box::new(buf.clone()), log::LevelFilter::Debug, "ns", true);
        log_at(&logger, log::Level::Info, "runtime chosen");
        log_at(&logger, log::Level::Debug, "cgroup gone");
        log_at(&logger, log::Level::Trace, "filtered out");
        assert!(written(&buf).is_empty(), "{:?}", written(&buf));
        log_at(&logger, log::Level::Warn, "init.pid missing");
        log_at(&logger, log::Level::Info, "cleanup finished");
        let w = written(&buf);
        let msgs: Vec<&str> = w
            .iter()
            .map(|l| l.split(" id=").next().unwrap_or(l))
            .collect();
        assert_eq!(
            msgs,
            [
                "info msg=\"runtime chosen\"",
                "debug msg=\"cgroup gone\"",
                "warning msg=\"init.pid missing\"",
                "info msg=\"cleanup finished\""
            ]
        );
        // An error releases them too.
        let buf = Buf::default();
        let logger = Logger::new(Box::new(buf.clone()), log::LevelFilter::Info, "ns", true);
        log_at(&logger, log::Level::Info, "a");
        log_at(&logger, log::Level::Error, "b");
        assert_eq!(written(&buf).len(), 2);
        // Unheld, every line is written at once.
        let buf = Buf::default();
        let logger = Logger::new(Box::new(buf.clone()), log::LevelFilter::Info, "ns", false);
        log_at(&logger, log::Level::Info, "a");
        assert_eq!(written(&buf).len(), 1);
    }

    #[test]
    fn dates() {
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000Z"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.000000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }
}
