//! A shard's own view of the ports it owns, per domain: the receivers of a
//! flood on this shard, read without any lock.
//!
//! The [`Fabric`](super::Fabric) of a domain is shared by every shard; a
//! flood the fabric routes to a shard (`Route::Flood`'s `local`/`remote`)
//! reaches that shard's ports through this list, kept by the shard from the
//! same add/remove calls that change the fabric. Only slots are kept: the
//! form of each port's frames is the fabric's (and its session's) to say.

/// Per domain (virtual hub index): the slots of this shard's ports.
#[derive(Debug, Default, Clone)]
pub struct LocalPorts {
    domains: Vec<Vec<u32>>,
}

impl LocalPorts {
    /// Lists for `domains` domains, all empty.
    pub fn new(domains: usize) -> Self {
        LocalPorts {
            domains: vec![Vec::new(); domains],
        }
    }

    /// Records port `slot` of `domain` on this shard.
    pub fn add(&mut self, domain: usize, slot: u32) {
        if let Some(d) = self.domains.get_mut(domain) {
            d.push(slot);
        }
    }

    /// Forgets port `slot` of `domain`.
    pub fn remove(&mut self, domain: usize, slot: u32) {
        if let Some(d) = self.domains.get_mut(domain) {
            if let Some(i) = d.iter().position(|&s| s == slot) {
                d.swap_remove(i);
            }
        }
    }

    /// The receivers of a flood of `domain` on this shard: every port but
    /// `except` (the ingress, when it is here).
    pub fn flood(&self, domain: usize, except: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        self.domains
            .get(domain)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&s| Some(s) != except)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_every_port_but_the_ingress() {
        let mut l = LocalPorts::new(2);
        l.add(0, 1);
        l.add(0, 2);
        l.add(1, 3);
        l.add(9, 4); // no such domain: ignored
        assert_eq!(l.flood(0, Some(1)).collect::<Vec<_>>(), vec![2]);
        assert_eq!(l.flood(1, None).collect::<Vec<_>>(), vec![3]);
        assert_eq!(l.flood(9, None).count(), 0);
        l.remove(0, 2);
        assert_eq!(l.flood(0, Some(1)).count(), 0);
        assert_eq!(l.flood(0, None).collect::<Vec<_>>(), vec![1]);
    }
}
