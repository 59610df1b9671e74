//! A shard's own view of the ports it owns, per domain: the receivers of a
//! flood on this shard, read without any lock.
//!
//! The [`Fabric`](super::Fabric) of a domain is shared by every shard; a
//! flood the fabric routes to a shard (`Route::Flood`'s `local`/`remote`)
//! reaches that shard's ports through this list, kept by the shard from the
//! same add/remove calls that change the fabric.

use crate::offload::Form;

/// Per domain (virtual hub index): the slots and forms of this shard's
/// ports.
#[derive(Debug, Default, Clone)]
pub struct LocalPorts {
    domains: Vec<Vec<(u32, Form)>>,
}

impl LocalPorts {
    /// Lists for `domains` domains, all empty.
    pub fn new(domains: usize) -> Self {
        LocalPorts {
            domains: vec![Vec::new(); domains],
        }
    }

    /// Records port `slot` (in `form`) of `domain` on this shard.
    pub fn add(&mut self, domain: usize, slot: u32, form: Form) {
        if let Some(d) = self.domains.get_mut(domain) {
            d.push((slot, form));
        }
    }

    /// Forgets port `slot` of `domain`.
    pub fn remove(&mut self, domain: usize, slot: u32) {
        if let Some(d) = self.domains.get_mut(domain) {
            if let Some(i) = d.iter().position(|&(s, _)| s == slot) {
                d.swap_remove(i);
            }
        }
    }

    /// How many ports `domain` has on this shard.
    pub fn len(&self, domain: usize) -> usize {
        self.domains.get(domain).map_or(0, Vec::len)
    }

    /// Whether this shard has no port of `domain`.
    pub fn is_empty(&self, domain: usize) -> bool {
        self.len(domain) == 0
    }

    /// The `i`-th port of `domain` (for `i < len(domain)`), as
    /// `(slot, form)`. Indexed rather than iterated, so a caller can deliver
    /// to each receiver while it holds other state mutably.
    pub fn get(&self, domain: usize, i: usize) -> Option<(u32, Form)> {
        self.domains.get(domain)?.get(i).copied()
    }

    /// The receivers of a flood of `domain` on this shard: every port but
    /// `except` (the ingress, when it is here).
    pub fn flood(
        &self,
        domain: usize,
        except: Option<u32>,
    ) -> impl Iterator<Item = (u32, Form)> + '_ {
        self.domains
            .get(domain)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&(s, _)| Some(s) != except)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_every_port_but_the_ingress() {
        let mut l = LocalPorts::new(2);
        l.add(0, 1, Form::Plain);
        l.add(0, 2, Form::Vnet);
        l.add(1, 3, Form::Plain);
        l.add(9, 4, Form::Plain); // no such domain: ignored
        let f: Vec<_> = l.flood(0, Some(1)).collect();
        assert_eq!(f, vec![(2, Form::Vnet)]);
        assert_eq!(l.flood(1, None).count(), 1);
        l.remove(0, 2);
        assert_eq!(l.flood(0, Some(1)).count(), 0);
        assert_eq!((l.len(0), l.len(1), l.len(9)), (1, 1, 0));
        assert_eq!(l.get(0, 0), Some((1, Form::Plain)));
    }
}
