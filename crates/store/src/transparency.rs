//! The audit log as a Merkle tree in the style of Certificate Transparency (RFC 9162 §2.1), with
//! `ct-merkle` doing the tree and its proofs.
//!
//! Leaf `i` (from 0) is the chain hash of the audit record with `seq = i + 1`: the chain hash
//! already commits to the record's content, its number and the record before. Leaf hashes are
//! `SHA-256(0x00 ‖ chain hash)`, inner nodes `SHA-256(0x01 ‖ left ‖ right)`; inclusion and
//! consistency proofs are RFC 9162's `PATH` and `PROOF`, lists of 32-byte hashes.
//!
//! [`LogTree`] keeps the leaves and every complete subtree's hash in memory (96 bytes a record),
//! built once in one pass over the log and then extended record by record, so a tree head and a
//! proof to it cost O(log n). A proof to an older size rebuilds that prefix (O(n)).

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};

use crate::audit::AuditRecord;

type Sha256 = sha2_11::Sha256;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// A stored signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTreeHead {
    /// Number of leaves.
    pub tree_size: u64,
    /// The tree's root hash.
    pub root_hash: Hash,
    /// When it was signed (milliseconds since 1970).
    pub signed_at_ms: u64,
    /// The key that signed it.
    pub key_id: [u8; 8],
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

/// Why a proof cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The sizes or index asked for are not in this tree.
    #[error("{0}")]
    OutOfRange(String),
}

fn to_hash(out: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&out[..32]);
    h
}

fn chunks(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks_exact(32).map(to_hash).collect()
}

fn join(proof: &[Hash]) -> Vec<u8> {
    proof.iter().flatten().copied().collect()
}

/// The RFC 9162 leaf hash of a leaf (an audit record's chain hash): `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &Hash) -> Hash {
    use sha2_11::Digest;
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    to_hash(&h.finalize())
}

/// The audit log's Merkle tree, in memory.
#[derive(Debug, Clone, Default)]
pub struct LogTree {
    tree: MemoryBackedTree<Sha256, Hash>,
}

impl LogTree {
    /// An empty tree.
    pub fn new() -> LogTree {
        LogTree::default()
    }

    /// A tree of these leaves.
    pub fn of(leaves: &[Hash]) -> LogTree {
        let mut t = LogTree::new();
        for l in leaves {
            t.push(*l);
        }
        t
    }

    /// Appends a leaf.
    pub fn push(&mut self, leaf: Hash) {
        self.tree.push(leaf);
    }

    /// Appends the next audit record, if it is the record this tree expects: numbered one past
    /// the tree's size, linked to its last leaf, and hashing to its stored hash (an entry whose
    /// text was edited under an unchanged hash is refused). Returns whether it was appended.
    pub fn push_record(&mut self, r: &AuditRecord) -> bool {
        if crate::audit::chain_hash(&r.prev_hash, r.seq, &r.entry) != r.hash {
            return false;
        }
        let expected_seq = i64::try_from(self.len()).unwrap_or(i64::MAX).saturating_add(1);
        let linked = match self.tree.items().last() {
            Some(last) => *last == r.prev_hash,
            None => r.prev_hash == crate::audit::GENESIS,
        };
        if r.seq != expected_seq || !linked {
            return false;
        }
        self.push(r.hash);
        true
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The leaves.
    pub fn leaves(&self) -> &[Hash] {
        self.tree.items()
    }

    /// The root hash (of the empty tree: `SHA-256("")`).
    pub fn root(&self) -> Hash {
        to_hash(self.tree.root().as_bytes())
    }

    /// The tree of the first `size` leaves: this one when that is its size, else rebuilt.
    fn prefix(&self, size: u64) -> Result<std::borrow::Cow<'_, LogTree>, ProofError> {
        if size == self.len() {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        let n = usize::try_from(size)
            .ok()
            .filter(|&n| n <= self.leaves().len())
            .ok_or_else(|| {
                ProofError::OutOfRange(format!("the tree has {} entries, not {size}", self.len()))
            })?;
        Ok(std::borrow::Cow::Owned(LogTree::of(&self.leaves()[..n])))
    }

    /// The root hash of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        Ok(self.prefix(size)?.root())
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        if index >= size {
            return Err(ProofError::OutOfRange(format!(
                "entry {index} is not in a tree of {size} entries"
            )));
        }
        let tree = self.prefix(size)?;
        let i = usize::try_from(index).map_err(|_| ProofError::OutOfRange("index too large".into()))?;
        Ok(chunks(tree.tree.prove_inclusion(i).as_bytes()))
    }

    /// The consistency proof from the tree of the first `first` leaves to that of the first
    /// `second` (empty when `first` is 0 or equals `second`).
    pub fn consistency(&self, first: u64, second: u64) -> Result<Vec<Hash>, ProofError> {
        if first > second {
            return Err(ProofError::OutOfRange(format!(
                "the first size ({first}) is larger than the second ({second})"
            )));
        }
        let tree = self.prefix(second)?;
        if first == 0 || first == second {
            return Ok(Vec::new());
        }
        let additions =
            usize::try_from(second - first).map_err(|_| ProofError::OutOfRange("sizes too large".into()))?;
        Ok(chunks(tree.tree.prove_consistency(additions).as_bytes()))
    }
}

fn root(hash: &Hash, size: u64) -> RootHash<Sha256> {
    RootHash::new((*hash).into(), size)
}

/// Whether `proof` shows `leaf` (an audit record's chain hash) at `index` in the tree of `size`
/// leaves whose root is `root_hash`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, root_hash: &Hash, proof: &[Hash]) -> bool {
    if index >= size {
        return false;
    }
    let Ok(proof) = InclusionProof::<Sha256>::try_from_bytes(join(proof)) else {
        return false;
    };
    root(root_hash, size)
        .verify_inclusion(leaf, index, &proof)
        .is_ok()
}

/// Whether `proof` shows the tree of `first` leaves with root `first_root` to be a prefix of the
/// tree of `second` leaves with root `second_root`.
pub fn verify_consistency(
    first: u64,
    first_root: &Hash,
    second: u64,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first > second {
        return false;
    }
    if first == 0 {
        // Every tree extends the empty one.
        return proof.is_empty();
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let Ok(proof) = ConsistencyProof::<Sha256>::try_from_bytes(join(proof)) else {
        return false;
    };
    root(second_root, second)
        .verify_consistency(&root(first_root, first), &proof)
        .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..8].copy_from_slice(&(i as u64).to_be_bytes());
                h[31] = 0xa5;
                h
            })
            .collect()
    }

    #[test]
    fn known_roots() {
        // RFC 9162 §2.1.1: the empty tree's hash is SHA-256 of nothing; one leaf's is its leaf hash.
        assert_eq!(
            data_encoding::HEXLOWER.encode(&LogTree::new().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let one = leaves(1);
        assert_eq!(LogTree::of(&one).root(), leaf_hash(&one[0]));
        // Two leaves: SHA-256(0x01 ‖ leaf hash ‖ leaf hash).
        let two = leaves(2);
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update([1u8]);
        h.update(leaf_hash(&two[0]));
        h.update(leaf_hash(&two[1]));
        let want: Hash = h.finalize().into();
        assert_eq!(LogTree::of(&two).root(), want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inclusion_proofs_verify_and_only_for_their_leaf(size in 1usize..140, pick in any::<u64>()) {
            let ls = leaves(size);
            let tree = LogTree::of(&ls);
            let index = pick % size as u64;
            let proof = tree.inclusion(index, size as u64).unwrap();
            let root = tree.root();
            prop_assert!(verify_inclusion(&ls[index as usize], index, size as u64, &root, &proof));
            // Another leaf, another place, another root or a cut proof does not verify.
            let mut other = ls[index as usize];
            other[0] ^= 1;
            prop_assert!(!verify_inclusion(&other, index, size as u64, &root, &proof));
            if size > 1 {
                let elsewhere = (index + 1) % size as u64;
                prop_assert!(!verify_inclusion(&ls[index as usize], elsewhere, size as u64, &root, &proof));
            }
            let mut bad_root = root;
            bad_root[3] ^= 0x40;
            prop_assert!(!verify_inclusion(&ls[index as usize], index, size as u64, &bad_root, &proof));
            if !proof.is_empty() {
                prop_assert!(!verify_inclusion(&ls[index as usize], index, size as u64, &root, &proof[1..]));
            }
        }

        #[test]
        fn consistency_proofs_verify_between_prefixes_and_catch_a_rewrite(
            second in 1usize..140, pick in any::<u64>(), victim in any::<u64>()
        ) {
            let ls = leaves(second);
            let tree = LogTree::of(&ls);
            let first = 1 + pick % second as u64;
            let first_root = tree.root_at(first).unwrap();
            prop_assert_eq!(first_root, LogTree::of(&ls[..first as usize]).root());
            let proof = tree.consistency(first, second as u64).unwrap();
            prop_assert!(verify_consistency(first, &first_root, second as u64, &tree.root(), &proof));
            // The same proof from a smaller tree is served too (a head older than the newest).
            let mid = first + (second as u64 - first) / 2;
            let p2 = tree.consistency(first, mid).unwrap();
            prop_assert!(verify_consistency(first, &first_root, mid, &tree.root_at(mid).unwrap(), &p2));
            // Rewrite one leaf of the old part: the new tree no longer extends the old head.
            let mut rewritten = ls.clone();
            let v = (victim % first) as usize;
            rewritten[v][5] ^= 0x08;
            let forged = LogTree::of(&rewritten);
            let forged_proof = forged.consistency(first, second as u64).unwrap();
            prop_assert!(!verify_consistency(first, &first_root, second as u64, &forged.root(), &forged_proof));
        }
    }

    #[test]
    fn out_of_range_requests_are_refused() {
        let tree = LogTree::of(&leaves(5));
        assert!(tree.inclusion(5, 5).is_err());
        assert!(tree.inclusion(0, 6).is_err());
        assert!(tree.consistency(4, 3).is_err());
        assert!(tree.consistency(2, 9).is_err());
        assert_eq!(tree.consistency(0, 5).unwrap(), Vec::<Hash>::new());
        assert!(!verify_consistency(
            3,
            &tree.root_at(3).unwrap(),
            3,
            &tree.root(),
            &[]
        ));
    }
}
