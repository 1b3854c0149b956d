//! TLS on the `--bind` listeners, with rustls and its `ring` provider.
//!
//! - [`server_config`]: the settings' files read into a rustls config, with
//!   one-line errors naming the setting and the file: at boot (the facade
//!   exits 2), at SIGHUP (the old workers keep serving) and in each worker
//!   after the fork (the new workers of a reload read the new files: that is
//!   certificate rotation).
//! - [`Tls::accept`]: one connection's handshake, under `--header-timeout`,
//!   after a look at its first bytes: plain HTTP sent to a TLS port gets a
//!   plain `400` and a close, not a hang or a TLS alert it cannot read.
//! - `subject`: the client certificate's subject as RFC 4514 text, for
//!   `RequestInfo::client_subject`.
//! - `tickets`: session tickets sealed with a secret the supervisor makes
//!   before the fork, so a client resumes on any worker.

pub(crate) mod subject;
pub(crate) mod tickets;

pub use tickets::prepare;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferricorn_config::{CertReqs, Config, HttpVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::prefixed::Prefixed;

/// A setting's file that cannot be used: one line naming both.
#[derive(Debug, thiserror::Error)]
#[error("`{key}` {}: {why}", path.display())]
pub struct TlsError {
    key: &'static str,
    path: PathBuf,
    why: String,
}

impl TlsError {
    /// The setting whose file it is.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The file and what is wrong with it, without the setting.
    pub fn why(&self) -> String {
        let path = self.path.display().to_string();
        format!("`{}`: {}", ferricorn_config::short(&path), self.why)
    }

    fn new(key: &'static str, path: &Path, why: impl Into<String>) -> Self {
        Self {
            key,
            path: path.to_owned(),
            why: why.into(),
        }
    }
}

/// What a PEM read failed on, in words.
fn pem_why(e: rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error as Pem;
    match e {
        Pem::Io(e) => format!("cannot be read: {e}"),
        Pem::NoItemsFound => format!("holds no {what} in PEM"),
        other => format!("is not valid PEM: {other:?}"),
    }
}

/// Every certificate in the PEM file `path`, at least one.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::new(key, path, pem_why(e, "certificate")))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(key, path, pem_why(e, "certificate")))?;
    if certs.is_empty() {
        return Err(TlsError::new(key, path, "holds no certificate in PEM"));
    }
    Ok(certs)
}

/// The rustls server config the settings ask for; `None` without
/// `certfile`. Reads every file named.
pub fn server_config(config: &Config) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let Some(certfile) = &config.certfile else {
        return Ok(None);
    };
    let chain = certificates("certfile", certfile)?;
    let (key_setting, key_path) = match &config.keyfile {
        Some(k) => ("keyfile", k.as_path()),
        None => ("certfile", certfile.as_path()),
    };
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| TlsError::new(key_setting, key_path, pem_why(e, "private key")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&TLS13, &TLS12])
        .map_err(|e| TlsError::new("certfile", certfile, e.to_string()))?;
    let builder = match (config.cert_reqs, &config.ca_certs) {
        (CertReqs::None, _) | (_, None) => builder.with_no_client_auth(),
        (reqs, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("ca_certs", ca)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::new("ca_certs", ca, format!("a bad CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match reqs {
                CertReqs::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::new("ca_certs", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::new(
            key_setting,
            key_path,
            format!(
                "the key does not match the certificate in `certfile` {}",
                certfile.display()
            ),
        ),
        other => TlsError::new(key_setting, key_path, other.to_string()),
    })?;
    server.alpn_protocols = match config.http {
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        HttpVersion::One => vec![b"http/1.1".to_vec()],
        HttpVersion::Two => vec![b"h2".to_vec()],
    };
    // The server's order of suites (rustls': AES-GCM and ChaCha20, with
    // forward secrecy), not the client's.
    server.ignore_client_order = true;
    // Resumption with session tickets any worker can read.
    server.ticketer = Arc::new(tickets::SharedTickets::new());
    Ok(Some(Arc::new(server)))
}

/// A TLS handshake's outcome: the stream, whether the client chose h2,
/// and a verified client certificate's subject.
pub(crate) struct Secured<IO> {
    pub stream: TlsStream<Prefixed<IO>>,
    pub h2: bool,
    pub subject: Option<Arc<str>>,
}

/// What every TLS connection of a worker shares.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    /// The time a client has for the whole handshake.
    timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a connection to a TLS port was closed before HTTP.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("no TLS handshake within header-timeout")]
    Timeout,
    #[error("plain HTTP sent to a TLS port (answered 400)")]
    PlainHttp,
    #[error("not a TLS handshake")]
    NotTls,
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
}

/// The answer to plain HTTP on a TLS port, as nginx gives one.
const PLAIN_HTTP: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 48\r\nConnection: close\r\n\r\nThis port serves HTTPS: use https:// to reach it\n";

/// The first byte of a TLS record carrying a handshake.
const HANDSHAKE: u8 = 0x16;

impl Tls {
    pub(crate) fn new(config: Arc<ServerConfig>, timeout: Duration) -> Self {
        Self {
            acceptor: TlsAcceptor::from(config),
            timeout,
        }
    }

    /// The handshake of one connection, whole, within the timeout.
    pub(crate) async fn accept<IO>(&self, io: IO) -> Result<Secured<IO>, Refused>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        tokio::time::timeout(self.timeout, self.handshake(io))
            .await
            .unwrap_or(Err(Refused::Timeout))
    }

    async fn handshake<IO>(&self, mut io: IO) -> Result<Secured<IO>, Refused>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut first = vec![0u8; 512];
        let n = io.read(&mut first).await.map_err(Refused::Handshake)?;
        first.truncate(n);
        match first.first() {
            Some(&HANDSHAKE) => {}
            Some(b) if b.is_ascii_uppercase() => {
                let _ = io.write_all(PLAIN_HTTP).await;
                let _ = io.shutdown().await;
                return Err(Refused::PlainHttp);
            }
            _ => return Err(Refused::NotTls),
        }
        let stream = self
            .acceptor
            .accept(Prefixed::new(io, first))
            .await
            .map_err(Refused::Handshake)?;
        let session = stream.get_ref().1;
        let h2 = session.alpn_protocol() == Some(b"h2");
        let subject = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(subject::of)
            .map(Arc::from);
        Ok(Secured {
            stream,
            h2,
            subject,
        })
    }
}
