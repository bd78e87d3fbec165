//! A real `redis-server` for tests, on a free port, killed on drop. Tests
//! never use a Redis they did not start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRedis {
    pub port: u16,
    child: Option<Child>,
    tls: Option<Tls>,
}

/// A server that speaks only TLS, on a certificate of a throwaway
/// certificate authority, and lets in only one user with a password: what a
/// managed Redis asks of its clients.
struct Tls {
    dir: std::path::PathBuf,
}

pub const TLS_USER: &str = "snake";
pub const TLS_PASSWORD: &str = "s3cret-pit";

impl TestRedis {
    /// Starts `redis-server` on a free port and waits until it answers.
    pub fn start() -> Self {
        let mut r = Self { port: free_port(), child: None, tls: None };
        r.spawn_somewhere();
        r
    }

    /// Starts `redis-server` with TLS only (no plain port) on a free port,
    /// with a certificate for 127.0.0.1 signed by a certificate authority
    /// made for it (`openssl`), and one user, [`TLS_USER`] with
    /// [`TLS_PASSWORD`]; the default user is off.
    pub fn start_tls() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("snakepit-redis-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        make_certificates(&dir);
        let mut r = Self { port, child: None, tls: Some(Tls { dir }) };
        r.spawn_somewhere();
        r
    }

    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}/", self.port),
            Some(_) => format!("rediss://{TLS_USER}:{TLS_PASSWORD}@127.0.0.1:{}/", self.port),
        }
    }

    /// The PEM of the certificate authority a TLS server's certificate is
    /// signed by.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.ca_file().expect("a TLS server")).unwrap()
    }

    /// The file holding [`ca_pem`](Self::ca_pem), for `--redis-ca-file`.
    pub fn ca_file(&self) -> Option<std::path::PathBuf> {
        self.tls.as_ref().map(|t| t.dir.join("ca.crt"))
    }

    fn args(&self) -> Vec<String> {
        let port = self.port.to_string();
        let mut args: Vec<String> =
            ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(String::from).into();
        match &self.tls {
            None => args.extend(["--port".into(), port]),
            Some(t) => {
                let file = |name: &str| t.dir.join(name).display().to_string();
                args.extend(["--port".into(), "0".into(), "--tls-port".into(), port]);
                args.extend(["--tls-cert-file".into(), file("redis.crt"), "--tls-key-file".into(), file("redis.key")]);
                args.extend(["--tls-ca-cert-file".into(), file("ca.crt"), "--tls-auth-clients".into(), "no".into()]);
                args.extend(["--user".into(), "default".into(), "off".into()]);
                let user = format!("{TLS_USER} on >{TLS_PASSWORD} ~* &* +@all");
                args.push("--user".into());
                args.extend(user.split(' ').map(String::from));
            }
        }
        args
    }

    /// Starts the server on a free port: another port if the one picked
    /// was taken meanwhile (by another test's server, say).
    fn spawn_somewhere(&mut self) {
        for _ in 0..10 {
            if self.try_spawn() {
                return;
            }
            self.port = free_port();
        }
        panic!("redis-server did not start on any of 10 free ports");
    }

    /// Starts the server on its port and waits until it answers; false if
    /// the port is another's. A server that answers there must be ours
    /// (its process id), or a test could talk to, restart or kill another
    /// test's Redis.
    fn try_spawn(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(self.args())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                // Exited: its port is in use.
                return false;
            }
            let ours = match self.tls {
                None => server_pid(self.port).map(|pid| pid == child.id()),
                // The TLS port is open once the server is up; a server that
                // could not have it has exited by the next look.
                Some(_) => std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok().then(|| {
                    std::thread::sleep(Duration::from_millis(50));
                    matches!(child.try_wait(), Ok(None))
                }),
            };
            match ours {
                Some(true) => {
                    self.child = Some(child);
                    return true;
                }
                Some(false) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills the server (SIGKILL): everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, until [`TestRedis::resume`].
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let sent = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
        assert!(sent.success(), "kill -{name} {pid}");
    }

    /// A new, empty server on the same port (waiting, 10 s at most, if
    /// another server took the port meanwhile).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.try_spawn() {
            assert!(Instant::now() < deadline, "port {} taken by another server", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The process id of the plain Redis answering on `port`, if one does.
pub(crate) fn server_pid(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"INFO server\r\n").ok()?;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("process_id:") || !text[text.find("process_id:")?..].contains('\n') {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let line = text.lines().find_map(|l| l.strip_prefix("process_id:"))?;
    line.trim().parse().ok()
}

/// A certificate authority (`ca.crt`) and a server certificate for
/// 127.0.0.1 and localhost signed by it (`redis.crt`, `redis.key`), in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed (apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=snakepit test CA"],
        ]
        .concat(),
    );
    openssl(&[&["req"], &ec[..], &["-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=127.0.0.1"]].concat());
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "redis.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "redis.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
        if let Some(t) = &self.tls {
            let _ = std::fs::remove_dir_all(&t.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tests' servers picked one port (the free port was taken between
    /// the pick and the start): the second must not take the first's
    /// server for its own, and moves to another port.
    #[test]
    fn a_taken_port_is_never_mistaken_for_our_server() {
        let a = TestRedis::start();
        let mut b = TestRedis { port: a.port, child: None, tls: None };
        assert!(!b.try_spawn(), "the port is another server's");
        b.spawn_somewhere();
        assert_ne!(b.port, a.port);
        assert_eq!(server_pid(a.port), a.child.as_ref().map(Child::id));
        assert_eq!(server_pid(b.port), b.child.as_ref().map(Child::id));
    }
}
