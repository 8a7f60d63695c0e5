//! The binaries as child processes: a server started and read up to its
//! `listening on` line ([`ServerProcess`], killed on drop), a client run to
//! its end under a deadline ([`ClientRun`]), and the threads that drain their
//! pipes so no child blocks and no wait lasts forever.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{CLIENT, SERVER, WAIT, command};

/// How long to wait for a pipe to reach end-of-file once its child has exited:
/// the child's end is closed by then, so this only bounds a broken case (a
/// grandchild that inherited the pipe) instead of hanging on it.
const DRAIN: Duration = Duration::from_secs(2);

/// A child's pipe read to its end by a background thread, so the child never
/// blocks on it; [`join`](Self::join) waits for the end instead of guessing.
struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    /// Disconnects when the thread ends (EOF or read error, even on panic).
    done: mpsc::Receiver<()>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Starts collecting `pipe`.
fn collect(mut pipe: impl Read + Send + 'static) -> Collector {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let (done_tx, done) = mpsc::channel::<()>();
    let thread = thread::spawn(move || {
        let _done = done_tx;
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    Collector {
        buf,
        done,
        thread: Some(thread),
    }
}

impl Collector {
    /// Waits up to `limit` for the pipe's end and joins the thread; returns
    /// whether it ended (false: the pipe is still open, the bytes so far stay).
    fn join(&mut self, limit: Duration) -> bool {
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.done.recv_timeout(limit) {
            return false;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        true
    }

    /// Everything read so far.
    fn bytes(&self) -> Vec<u8> {
        self.buf.lock().unwrap().clone()
    }

    /// Everything read so far, as (lossy) UTF-8.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

/// A running server process; killed on drop, its stderr shown if the test panics.
pub(crate) struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub args: Vec<String>,
    stderr: Collector,
    stdout_rest: Arc<Mutex<Vec<u8>>>,
}

/// Why a server did not come up: its exit status and stderr.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub status: ExitStatus,
    pub stderr: String,
}

/// Starts `udp-echo-server` with `args` (callers pass `--port 0`) and waits for its
/// `listening on` line.
pub(crate) fn start_server(args: &[&str]) -> ServerProcess {
    try_start_server(args).unwrap_or_else(|f| {
        panic!(
            "server {args:?} did not start: {:?}\n{}",
            f.status, f.stderr
        )
    })
}

/// Like [`start_server`] but returns the failure of a server that exits instead.
pub(crate) fn try_start_server(args: &[&str]) -> Result<ServerProcess, StartFailure> {
    try_start_server_via(&[], args)
}

/// Starts the server under a wrapper that execs it, e.g. `ip netns exec NS`.
pub(crate) fn start_server_via(wrapper: &[&str], args: &[&str]) -> ServerProcess {
    try_start_server_via(wrapper, args).unwrap_or_else(|f| {
        panic!(
            "server {wrapper:?} {args:?} did not start: {:?}\n{}",
            f.status, f.stderr
        )
    })
}

fn try_start_server_via(wrapper: &[&str], args: &[&str]) -> Result<ServerProcess, StartFailure> {
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = command(program);
            c.args(rest).arg(SERVER);
            c
        }
        None => command(SERVER),
    };
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn udp-echo-server");
    let mut stderr = collect(child.stderr.take().unwrap());
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    let stdout_rest = Arc::new(Mutex::new(Vec::new()));
    let rest = Arc::clone(&stdout_rest);
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = line_tx.send(line);
        // Chunk by chunk, so the rest can be read while the server runs.
        let mut chunk = [0u8; 4096];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            rest.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    let line = match line_rx.recv_timeout(WAIT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("server {args:?} printed no line within {WAIT:?}");
        }
    };
    let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
        let status = wait_with_deadline(&mut child, WAIT).expect("server exits after failing");
        stderr.join(DRAIN);
        return Err(StartFailure {
            status,
            stderr: stderr.text(),
        });
    };
    Ok(ServerProcess {
        addr: addr
            .parse()
            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}")),
        child,
        args: args.iter().map(|s| s.to_string()).collect(),
        stderr,
        stdout_rest,
    })
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

impl ServerProcess {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits up to `limit` for a stdout line after `listening on` that starts
    /// with `prefix`, and returns the rest of it.
    pub(crate) fn wait_for_stdout_line(&self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let text = String::from_utf8_lossy(&self.stdout_rest.lock().unwrap()).into_owned();
            if let Some(line) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
                return Some(line.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a signal to the server.
    pub(crate) fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) has no memory effects; the pid is our own child, not yet reaped.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Waits for the server to exit by itself within `limit`; panics otherwise.
    /// Returns its status and its whole stderr.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, String) {
        let status = wait_with_deadline(&mut self.child, limit).unwrap_or_else(|| {
            panic!(
                "server {:?} still running after {limit:?}\nstderr:\n{}",
                self.args,
                self.stderr()
            )
        });
        // The exit closed the server's end of the pipe: read it to the end.
        self.stderr.join(DRAIN);
        (status, self.stderr())
    }

    /// True while the process has not exited.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits until stderr contains `needle` or `limit` passes.
    pub(crate) fn wait_for_stderr(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("--- server {:?} stderr ---\n{}", self.args, self.stderr());
        }
    }
}

/// What a finished client run left behind.
#[derive(Debug)]
pub(crate) struct ClientRun {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ClientRun {
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `udp-echo-client` with `args`, feeding `stdin`, and kills it after `WAIT`.
pub(crate) fn run_client(args: &[&str], stdin: Option<&[u8]>) -> ClientRun {
    run_program(CLIENT, args, stdin)
}

/// Runs `udp-echo-client` with a longer deadline than `WAIT`, for runs that
/// take longer by design (a rate search).
pub(crate) fn run_client_within(args: &[&str], limit: Duration) -> ClientRun {
    run_program_within(CLIENT, args, None, limit)
}

/// Runs `udp-echo-client` with these environment variables set, deadline `WAIT`.
pub(crate) fn run_client_env(args: &[&str], env: &[(&str, &str)]) -> ClientRun {
    run_program_env(CLIENT, args, None, WAIT, env)
}

/// Runs a program to completion with a deadline of `WAIT`.
pub(crate) fn run_program(program: &str, args: &[&str], stdin: Option<&[u8]>) -> ClientRun {
    run_program_within(program, args, stdin, WAIT)
}

fn run_program_within(
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    limit: Duration,
) -> ClientRun {
    run_program_env(program, args, stdin, limit, &[])
}

fn run_program_env(
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    limit: Duration,
    env: &[(&str, &str)],
) -> ClientRun {
    let started = Instant::now();
    let mut child = command(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let mut stdout = collect(child.stdout.take().unwrap());
    let mut stderr = collect(child.stderr.take().unwrap());
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let status = wait_with_deadline(&mut child, limit);
    let elapsed = started.elapsed();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{program} {args:?} still running after {limit:?}; stderr:\n{}",
            stderr.text()
        );
    };
    // The exit closed the child's ends of both pipes: read them to the end.
    stdout.join(DRAIN);
    stderr.join(DRAIN);
    ClientRun {
        status,
        stdout: stdout.bytes(),
        stderr: stderr.text(),
        elapsed,
    }
}
