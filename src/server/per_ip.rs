//! Connections per client address: beyond `server.max_connections_per_ip`, a client gets
//! HTTP 429 before any upgrade, so one address cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections (handshakes and sessions) by address.
pub struct PerIp {
    /// 0: no limit, and no bookkeeping at all.
    limit: usize,
    /// Addresses with at least one connection; an address leaves with its last one.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count, given back when dropped.
pub struct IpSlot {
    /// `None` when there is no limit.
    table: Option<(Arc<PerIp>, IpAddr)>,
}

impl PerIp {
    pub fn new(limit: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            limit,
            open: Mutex::default(),
        })
    }

    /// Counts a new connection from `ip`, or `None` when `ip` is at its limit.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        if self.limit == 0 {
            return Some(IpSlot { table: None });
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: Some((self.clone(), ip)),
        })
    }

    /// Connections open from `ip` (counted only while there is a limit).
    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some((table, ip)) = &self.table {
            let mut open = table.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_address_and_frees_on_drop() {
        let table = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = table.enter(a).unwrap();
        let _second = table.enter(a).unwrap();
        assert!(table.enter(a).is_none(), "third from one address");
        let _other = table.enter(b).expect("another address is not affected");
        drop(first);
        assert_eq!(table.open_from(a), 1);
        let _again = table.enter(a).expect("a freed place is reused");
        assert!(table.enter(a).is_none());
    }

    #[test]
    fn no_limit_keeps_no_table() {
        let table = PerIp::new(0);
        let ip: IpAddr = "::1".parse().unwrap();
        let slots: Vec<_> = (0..1000).map(|_| table.enter(ip).unwrap()).collect();
        assert_eq!(table.open_from(ip), 0);
        drop(slots);
    }
}
