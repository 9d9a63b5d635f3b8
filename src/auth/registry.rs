//! The token registry: every token `sigcast token issue` makes is recorded (its `jti`, `sub`,
//! scope, issue time and expiry, never the token itself) in the data directory's database, and
//! revocations are kept there too. Servers poll it and refuse revoked tokens at the handshake
//! and close live sessions that use them.
//!
//! Blocking (SQLite): call it from the command line or the blocking pool.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::Claims;
use crate::clock::unix_now;

/// Why the registry cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("token registry {path}: {source}")]
pub struct RegistryError {
    path: PathBuf,
    source: rusqlite::Error,
}

/// One recorded token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub jti: String,
    pub sub: String,
    pub symbols: Option<String>,
    pub strategies: Option<String>,
    pub issued_at: u64,
    pub expires_at: u64,
    pub revoked_at: Option<u64>,
}

impl TokenRecord {
    /// `active`, `expired` or `revoked`.
    pub fn state(&self, now: u64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "active"
        }
    }
}

/// What is revoked: token ids, and subjects with the time they were revoked: every token of
/// that subject issued at or before then, and up to [`MAX_LEEWAY`](super::MAX_LEEWAY) after,
/// since a token may be accepted with an `iat` that much ahead of the clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Revoked {
    pub jtis: HashSet<String>,
    pub subs: HashMap<String, u64>,
}

impl Revoked {
    pub fn covers(&self, claims: &Claims) -> bool {
        self.jtis.contains(&claims.jti)
            || self
                .subs
                .get(&claims.sub)
                .is_some_and(|at| claims.iat <= at.saturating_add(super::MAX_LEEWAY.as_secs()))
    }
}

impl Revoked {
    /// Hands `self` to the sessions watching `to`, when it differs from what they have.
    pub fn offer(self, to: &tokio::sync::watch::Sender<std::sync::Arc<Revoked>>) {
        to.send_if_modified(|current| {
            let changed = **current != self;
            if changed {
                tracing::info!(
                    tokens = self.jtis.len(),
                    subjects = self.subs.len(),
                    "revocations updated"
                );
                *current = std::sync::Arc::new(self);
            }
            changed
        });
    }
}

/// The registry in the database at `path`.
pub struct Registry {
    path: PathBuf,
    conn: Connection,
}

impl Registry {
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let err = |source| RegistryError {
            path: path.to_path_buf(),
            source,
        };
        let conn = crate::db::open(path).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                jti TEXT PRIMARY KEY,
                sub TEXT NOT NULL,
                symbols TEXT,
                strategies TEXT,
                issued_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                revoked_at INTEGER
            );
            CREATE TABLE IF NOT EXISTS revoked_subs (
                sub TEXT PRIMARY KEY,
                revoked_at INTEGER NOT NULL
            );",
        )
        .map_err(err)?;
        Ok(Registry {
            path: path.to_path_buf(),
            conn,
        })
    }

    fn err(&self, source: rusqlite::Error) -> RegistryError {
        RegistryError {
            path: self.path.clone(),
            source,
        }
    }

    /// Records an issued token's claims.
    pub fn record(&self, claims: &Claims) -> Result<(), RegistryError> {
        let join = |l: &Option<Vec<String>>| l.as_ref().map(|l| l.join(","));
        self.conn
            .execute(
                "INSERT OR REPLACE INTO tokens (jti, sub, symbols, strategies, issued_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    claims.jti,
                    claims.sub,
                    join(&claims.symbols),
                    join(&claims.strategies),
                    claims.iat as i64,
                    claims.exp as i64
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every recorded token, newest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>, RegistryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT jti, sub, symbols, strategies, issued_at, expires_at, revoked_at
                 FROM tokens ORDER BY issued_at DESC, jti",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TokenRecord {
                    jti: r.get(0)?,
                    sub: r.get(1)?,
                    symbols: r.get(2)?,
                    strategies: r.get(3)?,
                    issued_at: r.get::<_, i64>(4)? as u64,
                    expires_at: r.get::<_, i64>(5)? as u64,
                    revoked_at: r.get::<_, Option<i64>>(6)?.map(|t| t as u64),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Revokes one token by id; false when no recorded token has it. (An unrecorded id is
    /// revoked all the same: a token issued elsewhere can be blocked too.)
    pub fn revoke_jti(&self, jti: &str) -> Result<bool, RegistryError> {
        let now = unix_now() as i64;
        let known: Option<String> = self
            .conn
            .query_row("SELECT jti FROM tokens WHERE jti = ?1", [jti], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        if known.is_none() {
            self.conn
                .execute(
                    "INSERT INTO tokens (jti, sub, issued_at, expires_at, revoked_at)
                     VALUES (?1, '', 0, 0, ?2)",
                    params![jti, now],
                )
                .map_err(|e| self.err(e))?;
        } else {
            self.conn
                .execute(
                    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE jti = ?1",
                    params![jti, now],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(known.is_some())
    }

    /// Revokes every token of `sub` issued until now; returns how many recorded ones.
    pub fn revoke_sub(&self, sub: &str) -> Result<usize, RegistryError> {
        let now = unix_now() as i64;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO revoked_subs (sub, revoked_at) VALUES (?1, ?2)",
                params![sub, now],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE sub = ?1",
                params![sub, now],
            )
            .map_err(|e| self.err(e))
    }

    /// What is revoked now.
    pub fn revoked(&self) -> Result<Revoked, RegistryError> {
        let mut revoked = Revoked::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL")
            .map_err(|e| self.err(e))?;
        for jti in stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
        {
            revoked.jtis.insert(jti.map_err(|e| self.err(e))?);
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sub, revoked_at FROM revoked_subs")
            .map_err(|e| self.err(e))?;
        for row in stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?
        {
            let (sub, at) = row.map_err(|e| self.err(e))?;
            revoked.subs.insert(sub, at as u64);
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Audience;

    fn claims(jti: &str, sub: &str, iat: u64) -> Claims {
        Claims {
            sub: sub.into(),
            exp: iat + 3600,
            iat,
            jti: jti.into(),
            iss: "sigcast".into(),
            aud: Audience::One("sigcast-clients".into()),
            nbf: None,
            symbols: Some(vec!["BTCUSDT".into()]),
            strategies: None,
            role: None,
        }
    }

    #[test]
    fn record_list_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(&dir.path().join("db/sigcast.db")).unwrap();
        let now = unix_now();
        r.record(&claims("a", "alice", now)).unwrap();
        r.record(&claims("b", "bob", now)).unwrap();
        r.record(&claims("c", "bob", now)).unwrap();
        let list = r.list().unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.iter().all(|t| t.state(now) == "active"));
        assert_eq!(
            list.iter()
                .find(|t| t.jti == "a")
                .unwrap()
                .symbols
                .as_deref(),
            Some("BTCUSDT")
        );
        assert!(r.revoke_jti("a").unwrap());
        assert!(
            !r.revoke_jti("elsewhere").unwrap(),
            "unknown ids are blocked too"
        );
        assert_eq!(r.revoke_sub("bob").unwrap(), 2);
        let revoked = r.revoked().unwrap();
        assert!(revoked.covers(&claims("a", "alice", now)));
        assert!(revoked.covers(&claims("elsewhere", "x", now)));
        assert!(
            revoked.covers(&claims("zzz", "bob", now)),
            "any older token of bob"
        );
        assert!(
            revoked.covers(&claims("ahead", "bob", now + 5)),
            "a token dated as far ahead as the leeway lets one in"
        );
        assert!(
            !revoked.covers(&claims("new", "bob", now + 10)),
            "a token issued later"
        );
        assert!(!revoked.covers(&claims("d", "carol", now)));
        let states: Vec<&str> = r.list().unwrap().iter().map(|t| t.state(now)).collect();
        assert_eq!(states.iter().filter(|s| **s == "revoked").count(), 4);
    }
}
