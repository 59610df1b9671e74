//! Which shard each bench session landed on, and pairs arranged by it.
//!
//! The hub's shards share one port through `SO_REUSEPORT`: the kernel
//! hashes each connection's addresses to a shard, so the bench cannot
//! choose where a session lands. It can ask afterwards: the hub's admin
//! API (`{"cmd":"sessions"}` on its Unix socket) lists every session with
//! its shard and the client's address, and the bench's own local port
//! names the session. [`arrange`] then orders the sessions so that the two
//! ends of every pair (session 2k ↔ 2k+1) share a shard, or never do —
//! the same traffic with and without cross-shard hand-offs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Where the two sessions of a pair live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Wherever the kernel put them (no reordering).
    Any,
    /// Both ends of every pair on the same shard: no hand-offs.
    Same,
    /// The ends of every pair on different shards: every frame crosses.
    Cross,
}

/// The shard of each connected session, by the client's (bench's) local
/// TCP port, from the hub's admin socket.
pub async fn shards_by_port(admin: &Path) -> anyhow::Result<HashMap<u16, u16>> {
    let stream = tokio::net::UnixStream::connect(admin)
        .await
        .with_context(|| format!("the hub's admin socket {}", admin.display()))?;
    let (rd, mut wr) = stream.into_split();
    wr.write_all(b"{\"cmd\":\"sessions\"}\n").await?;
    let mut line = String::new();
    BufReader::new(rd).read_line(&mut line).await?;
    let v: serde_json::Value =
        serde_json::from_str(&line).context("the admin socket's answer is not JSON")?;
    anyhow::ensure!(
        v["ok"] == serde_json::Value::Bool(true),
        "the admin socket refused `sessions`: {}",
        v["error"]
    );
    let mut map = HashMap::new();
    for s in v["sessions"].as_array().into_iter().flatten() {
        let (Some(remote), Some(shard)) = (s["remote"].as_str(), s["shard"].as_u64()) else {
            anyhow::bail!("a session without remote or shard in the admin answer: {s}");
        };
        let addr: SocketAddr = remote
            .parse()
            .with_context(|| format!("remote address {remote:?}"))?;
        map.insert(addr.port(), shard as u16);
    }
    Ok(map)
}

/// Indexes into `shards` (the shard of each connected session), `2 ×
/// pairs` of them, in an order where entries 2k and 2k+1 form a pair as
/// `want` asks; `None` when these sessions cannot make that many pairs.
/// Same-shard pairs are taken from the shards in turn, so every shard gets
/// its share of the load.
pub fn arrange(shards: &[u16], want: Placement, pairs: usize) -> Option<Vec<usize>> {
    if want == Placement::Any {
        return (shards.len() >= 2 * pairs).then(|| (0..2 * pairs).collect());
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_shard: HashMap<u16, usize> = HashMap::new();
    for (i, &s) in shards.iter().enumerate() {
        let g = *by_shard.entry(s).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    let mut order = Vec::with_capacity(2 * pairs);
    match want {
        Placement::Any => unreachable!(),
        Placement::Same => {
            while order.len() < 2 * pairs {
                let before = order.len();
                for g in groups.iter_mut().filter(|g| g.len() >= 2) {
                    if order.len() == 2 * pairs {
                        break;
                    }
                    order.extend([g.pop()?, g.pop()?]);
                }
                if order.len() == before {
                    return None;
                }
            }
        }
        Placement::Cross => {
            while order.len() < 2 * pairs {
                // One from each of the two largest groups left.
                groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
                if groups.len() < 2 || groups[1].is_empty() {
                    return None;
                }
                let a = groups[0].pop()?;
                let b = groups[1].pop()?;
                order.extend([a, b]);
            }
        }
    }
    Some(order)
}

/// Pairs (2k, 2k+1) of `shards`, in that order, whose ends are on
/// different shards.
pub fn cross_pairs(shards: &[u16]) -> u32 {
    shards
        .chunks_exact(2)
        .filter(|p| p[0] != p[1])
        .count()
        .try_into()
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(shards: &[u16], order: &[usize], same: bool) {
        let mut seen = std::collections::HashSet::new();
        for p in order.chunks_exact(2) {
            assert!(seen.insert(p[0]) && seen.insert(p[1]), "{order:?} repeats");
            assert_eq!(
                shards[p[0]] == shards[p[1]],
                same,
                "{order:?} of {shards:?}"
            );
        }
    }

    #[test]
    fn same_shard_pairs_take_turns_between_shards() {
        let shards = [0, 1, 0, 0, 1, 1, 1, 0];
        let order = arrange(&shards, Placement::Same, 4).unwrap();
        check(&shards, &order, true);
        let on: Vec<u16> = order.chunks(2).map(|p| shards[p[0]]).collect();
        assert_eq!(on, [0, 1, 0, 1]);
        assert_eq!(
            arrange(&[0, 1, 0, 1, 0], Placement::Same, 2),
            Some(vec![4, 2, 3, 1])
        );
        assert_eq!(arrange(&[0, 1], Placement::Same, 1), None);
        assert_eq!(arrange(&[0, 1, 1], Placement::Same, 2), None);
    }

    #[test]
    fn cross_shard_pairs_or_none() {
        let shards = [0, 0, 0, 1, 1, 0, 1];
        let order = arrange(&shards, Placement::Cross, 3).unwrap();
        assert_eq!(order.len(), 6);
        check(&shards, &order, false);
        assert_eq!(arrange(&shards, Placement::Cross, 4), None);
        assert_eq!(arrange(&[3, 3, 3], Placement::Cross, 1), None);
        assert_eq!(cross_pairs(&[0, 1, 1, 1, 0]), 1);
    }

    #[test]
    fn any_keeps_the_order() {
        assert_eq!(arrange(&[1, 1, 0], Placement::Any, 1), Some(vec![0, 1]));
        assert_eq!(arrange(&[1], Placement::Any, 1), None);
    }
}
