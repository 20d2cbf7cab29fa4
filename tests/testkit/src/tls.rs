//! Test certificates: a throwaway CA and a `localhost` / `127.0.0.1` server certificate it
//! signed, made with the `openssl` command-line tool (webpki refuses a CA certificate used as
//! the server's own, so the chain has two links).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The files [`make_test_certs`] writes.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate (PEM), for a client's trust store.
    pub ca: PathBuf,
    /// The server certificate (PEM), valid for `localhost` and `127.0.0.1`.
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

/// Writes `ca.pem`, `cert.pem` and `key.pem` (and their by-products) into `dir`. Panics with
/// the failing command when `openssl` is missing or fails: it is a test harness.
pub fn make_test_certs(dir: &Path) -> TestCerts {
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .expect("openssl (install Debian's openssl package)");
        assert!(ok.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write leaf.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    TestCerts { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") }
}
