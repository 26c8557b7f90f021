"""Near-duplicate detection: rensa MinHash signatures, LSH banding in numpy, exact-Jaccard verification.

How it scales to 1M rows (no O(n^2) step, memory bounded):

1. Rows stream through in chunks: shingle, then sketch the chunk in one rensa batch call
   (``RMinHash.digest_matrix_from_token_sets``). Of each signature we keep only what the later
   steps need: one 32-bit hash per LSH band (b x 4 bytes) and the low 4 bits of every MinHash
   value (a b-bit fingerprint, num_perm / 2 bytes). 1M rows at 256 permutations: 256 MB. rensa's
   own ``RMinHashLSH`` index measured ~2.9 KB per row (32 bands), 2.9 GB at 1M rows, and its
   candidates would still need the full signatures to check.
2. Rows with an identical shingle set are collapsed first: only one representative is sketched,
   so exact copies cannot form giant buckets; each copy is paired with its first occurrence.
3. Candidates: per band, rows sorted by band hash; rows sharing a hash (a bucket) become
   candidate pairs (in a bucket larger than ``_BUCKET_SPAN`` + 1, each row is paired with the
   ``_BUCKET_SPAN`` rows after it: clusters stay connected, work stays linear).
4. Candidates are screened by the fingerprint estimate of Jaccard (drop below threshold - 0.1,
   about four standard deviations of the 4-bit estimate at 256 permutations) and the survivors confirmed by the *exact*
   Jaccard of their shingle sets, so a reported pair is never a MinHash false positive.
   ``lsh_bands`` picks bands so that a pair at the threshold is a candidate with p >= 0.99.

Measured (``bench/doctor.py``, 1M synthetic rows of ~21 words, 20k planted copies with 0-15 %
word edits): 61 s of CPU, peak RSS 1.6 GB including the corpus, precision 1.0 and recall 0.9999
against exact Jaccard; plain datasketch MinHashLSH needs 4.3x the CPU on a 100k sample.

Shingling: the set of normalised words (``ngram=1``) by default. Measured on Banking77
(10k intent queries of ~10 words, 300 rows with random word edits, exact Jaccard >= 0.8):
word 1-grams keep 87-89 % of 5-10 % edits, word 3-grams 11-14 %, character 5-grams 28-39 %,
character 3-grams 59-64 %. An n-gram shingle is destroyed by any edit inside it, so on a
10-word text one substituted word removes 3 of 8 word 3-grams. On long texts the word set
still separates unrelated rows (shared function words give Jaccard ~0.1-0.2) while tolerating
15 % word edits, which word 3-grams do not (~0.4). ``ngram`` > 1 gives order-sensitive shingles.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from tunerail.doctor.clusters import clusters_from_pairs as clusters_from_pairs  # re-exported: checks and leakage import it from here
from tunerail.doctor.clusters import groups_of, merge_components
from tunerail.doctor.shingles import DEFAULT_NGRAM, jaccard, shingles

DEFAULT_NUM_PERM = 256
DEFAULT_CHUNK = 4096  # rensa returns a chunk's signatures as Python lists: ~9 KB per row while a chunk is sketched
_SEED = 42
_BUCKET_SPAN = 32  # in a bigger bucket, each row is paired with this many rows after it
_SCREEN_MARGIN = 0.1  # fingerprint estimate may undershoot the threshold by this much
_PAIR_BATCH = 1 << 20  # candidate pairs decoded and verified at once
_CANDIDATE_BUFFER = 1 << 21  # candidate keys deduplicated together before screening (16 MB; 8M cost ~110 MB more at 300k rows)
_SCREEN_BATCH = 1 << 16  # pairs screened at once: 2 x 64k x num_perm bytes of fingerprints

Pair = tuple[int, int, float]
Progress = Callable[[int, int], None]


def minhashes(texts: Sequence[str], num_perm: int = DEFAULT_NUM_PERM, ngram: int = DEFAULT_NGRAM, seed: int = _SEED) -> list:
    """One ``rensa.RMinHash`` per text, built in a single batch call."""
    from rensa import RMinHash

    return RMinHash.from_token_sets([list(shingles(t, ngram)) for t in texts], num_perm, seed)


def lsh_bands(threshold: float, num_perm: int, min_recall: float = 0.99) -> int:
    """Bands b (rows per band r = num_perm / b) for an LSH at ``threshold``.

    A pair with Jaccard s becomes a candidate with probability 1 - (1 - s^r)^b. We take the most
    selective split (largest r, fewest spurious candidates to check) that still catches a pair
    exactly at the threshold with probability >= ``min_recall``; pairs above it do even better.
    E.g. threshold 0.8, 256 permutations: 32 bands of 8 (P = 0.997 at 0.8, 0.12 at 0.5, 0.002 at 0.3).
    """
    best = num_perm  # r = 1: every shared hash is a candidate (maximal recall)
    for bands in range(num_perm, 0, -1):
        if num_perm % bands:
            continue
        rows = num_perm // bands
        if 1 - (1 - threshold**rows) ** bands >= min_recall:
            best = bands
    return best


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


@dataclass
class _Sketches:
    """Signatures of the distinct shingle sets of ``texts``, reduced to band hashes and fingerprints.

    ``reps[k]`` is the first row with distinct set k, ``rep_of[row]`` the set id of every row.
    """

    reps: np.ndarray  # (k,) int64
    rep_of: np.ndarray  # (n,) int64
    bands: np.ndarray  # (k, b) uint32
    fingerprints: np.ndarray  # (k, num_perm / 2) uint8: two 4-bit fingerprints a byte


def _band_hashes(digests: np.ndarray, bands: int) -> np.ndarray:
    """One 32-bit hash per band of r MinHash values (vectorised multiply-xorshift mixing, low 32 bits).

    32 bits give ~n^2 / 2^33 chance collisions per band (about 100 at 1M rows), each only an extra
    candidate that the screen and the exact Jaccard drop; 64 bits would cost 4 more bytes a band a row.
    """
    n, num_perm = digests.shape
    parts = digests.reshape(n, bands, num_perm // bands).astype(np.uint64)
    h = np.full((n, bands), np.uint64(0x9E3779B97F4A7C15))
    for k in range(parts.shape[2]):
        h = (h ^ parts[:, :, k]) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return h.astype(np.uint32)


def _sketch(texts: Sequence[str], num_perm: int, bands: int, ngram: int, chunk_size: int, progress: Progress | None) -> _Sketches:
    from rensa import RMinHash

    n = len(texts)
    rep_of = np.empty(n, dtype=np.int64)
    # hash of a set -> its set id (the first set with that hash; equality re-checked on a hit):
    # sorted arrays for the sets of earlier chunks, a dict for this chunk's. A dict over all rows
    # cost ~100 bytes a row (100 MB at 1M rows).
    known_fp = np.zeros(0, dtype=np.int64)
    known_id = np.zeros(0, dtype=np.int64)
    reps = array("q")  # first row of each set
    # Filled in place, one row per distinct set: concatenating per-chunk parts at the end would hold
    # every sketch twice (2 x 384 MB at 1M rows). Rows past the last set are never touched, so the
    # unused tail costs no memory.
    band_arr = np.empty((n, bands), dtype=np.uint32)
    fp_arr = np.empty((n, num_perm // 2), dtype=np.uint8)
    for chunk in _chunks(n, chunk_size):
        sets = [shingles(texts[row], ngram) for row in chunk]
        fps = [hash(frozenset(s_)) for s_ in sets]
        earlier_of: dict[int, int] = {}  # chunk position -> set id of an earlier chunk with the same hash
        if len(known_fp):
            fp_arr_chunk = np.array(fps, dtype=np.int64)
            at = np.minimum(np.searchsorted(known_fp, fp_arr_chunk), len(known_fp) - 1)
            hit = np.nonzero(known_fp[at] == fp_arr_chunk)[0]
            earlier_of = dict(zip(hit.tolist(), known_id[at[hit]].tolist()))
        chunk_first: dict[int, int] = {}
        new_sets = []
        local: dict[int, set[str]] = {}
        for i, row in enumerate(chunk):
            s, fp = sets[i], fps[i]
            k = earlier_of.get(i, chunk_first.get(fp))
            if k is not None and (local.get(reps[k]) or shingles(texts[reps[k]], ngram)) == s:
                rep_of[row] = k
                continue
            # new set (or a hash collision, ~never: that set is then simply not collapsed)
            k = len(reps)
            if i not in earlier_of:
                chunk_first.setdefault(fp, k)
            reps.append(row)
            rep_of[row] = k
            local[row] = s
            new_sets.append(list(s))
        if chunk_first:
            merged_fp = np.concatenate([known_fp, np.fromiter(chunk_first.keys(), np.int64, len(chunk_first))])
            merged_id = np.concatenate([known_id, np.fromiter(chunk_first.values(), np.int64, len(chunk_first))])
            order = np.argsort(merged_fp, kind="stable")
            known_fp, known_id = merged_fp[order], merged_id[order]
        if new_sets:
            digests = np.array(RMinHash.digest_matrix_from_token_sets(new_sets, num_perm, _SEED).to_rows(), dtype=np.uint32)
            done = len(reps) - len(new_sets)
            band_arr[done : len(reps)] = _band_hashes(digests, bands)
            fp_arr[done : len(reps)] = _pack_nibbles(digests)
        if progress:
            progress(chunk.stop, n)
    return _Sketches(
        np.frombuffer(reps, dtype=np.int64).copy() if len(reps) else np.zeros(0, np.int64),
        rep_of,
        band_arr[: len(reps)],
        fp_arr[: len(reps)],
    )


def _band_slices(bands: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Candidate pairs ``(lo, hi)`` of set ids sharing a band hash, one slice per (band, bucket offset).

    A slice holds at most one pair per row, so memory stays O(rows) however big the buckets;
    the same pair may come again from another band (callers dedupe or skip it).
    """
    for b in range(bands.shape[1]):
        order = np.argsort(bands[:, b], kind="stable")
        col = bands[order, b]
        shared = np.zeros(len(bands), dtype=bool)  # rows in a bucket of two or more (usually a few %)
        eq = col[1:] == col[:-1]
        shared[1:] |= eq
        shared[:-1] |= eq
        order, col = order[shared], col[shared]  # buckets stay contiguous
        for d in range(1, _BUCKET_SPAN + 1):
            same = col[d:] == col[:-d]
            if not same.any():
                break
            a, c = order[:-d][same], order[d:][same]
            yield np.minimum(a, c), np.maximum(a, c)


class _KeySet:
    """Pair keys (uint64) seen so far: one sorted array plus a short list of recent batches (8 B a key)."""

    def __init__(self) -> None:
        self.sorted = np.zeros(0, dtype=np.uint64)
        self.recent: list[np.ndarray] = []
        self.pending = 0

    def new(self, keys: np.ndarray) -> np.ndarray:
        """The keys (unique, sorted) not seen before; they count as seen from now on."""
        keys = np.unique(keys)
        if len(self.sorted):
            at = np.minimum(np.searchsorted(self.sorted, keys), len(self.sorted) - 1)
            keys = keys[self.sorted[at] != keys]
        for batch in self.recent:
            keys = keys[~np.isin(keys, batch, assume_unique=True)]
        if len(keys):
            self.recent.append(keys)
            self.pending += len(keys)
            if self.pending > _PAIR_BATCH:
                self.sorted = _merge_sorted(self.sorted, np.sort(np.concatenate(self.recent)))
                self.recent, self.pending = [], 0
        return keys


def _merge_sorted(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Two sorted arrays of distinct keys, none in both, merged into one sorted array.

    ``np.union1d`` concatenates, copies and sorts: three times the result allocated besides the
    inputs (~110 MB for the 4.5M keys of 1M rows). Placing the new keys ``_SCREEN_BATCH`` at a
    time costs the result and two byte masks.
    """
    out = np.empty(len(old) + len(new), dtype=old.dtype)
    is_new = np.zeros(len(out), dtype=bool)
    for start in range(0, len(new), _SCREEN_BATCH):
        part = new[start : start + _SCREEN_BATCH]
        at = np.searchsorted(old, part) + np.arange(start, start + len(part))
        is_new[at] = True
        out[at] = part
    out[~is_new] = old
    return out


def _pack_nibbles(digests: np.ndarray) -> np.ndarray:
    """The low 4 bits of every MinHash value, two a byte (b-bit MinHash with b = 4).

    At 256 permutations a 4-bit estimate of Jaccard is nearly as tight as an 8-bit one (standard
    deviation 0.026 against 0.025 at Jaccard 0.8: the chance matches, 1/16 instead of 1/256, are
    corrected for) for half the bytes: 128 MB instead of 256 MB at 1M rows.
    """
    if digests.shape[1] % 2:
        raise ValueError(f"num_perm must be even for packed fingerprints, got {digests.shape[1]}")
    low = (digests & 0xF).astype(np.uint8)
    return low[:, 0::2] | (low[:, 1::2] << 4)


def _screen(fingerprints: np.ndarray, a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the pairs whose b-bit MinHash estimate of Jaccard is >= threshold - margin.

    Screened ``_SCREEN_BATCH`` pairs at a time: two fingerprint blocks of batch x num_perm / 2 bytes.
    """
    chance = 1 / 16  # two different values share their low 4 bits by chance
    keep = np.zeros(len(a), dtype=bool)
    num_perm = 2 * fingerprints.shape[1]
    for start in range(0, len(a), _SCREEN_BATCH):
        pa, pb = a[start : start + _SCREEN_BATCH], b[start : start + _SCREEN_BATCH]
        differ = fingerprints[pa] ^ fingerprints[pb]
        match = (np.count_nonzero((differ & 0x0F) == 0, axis=1) + np.count_nonzero((differ & 0xF0) == 0, axis=1)) / num_perm
        keep[start : start + len(pa)] = (match - chance) / (1 - chance) >= threshold - _SCREEN_MARGIN
    return keep


class _ShingleCache:
    """Shingle sets of the rows being verified, recomputed on demand (bounded: never all rows at once).

    10k sets: a set of ~50 words with its strings is ~5 KB, so 50k sets held ~250 MB; measured on
    300k rows, 10k cut the stage's peak from 629 to 471 MB for a few seconds of recomputation.
    """

    def __init__(self, texts: Sequence[str], ngram: int, size: int = 10_000):
        self.texts, self.ngram, self.size = texts, ngram, size
        self.sets: dict[int, set[str]] = {}

    def __call__(self, row: int) -> set[str]:
        s = self.sets.get(row)
        if s is None:
            if len(self.sets) >= self.size:
                self.sets.clear()
            s = self.sets[row] = shingles(self.texts[row], self.ngram)
        return s


RowFilter = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _similar_sets(
    texts: Sequence[str],
    threshold: float,
    num_perm: int,
    ngram: int,
    chunk_size: int,
    progress: Progress | None,
    keep: RowFilter | None = None,
) -> tuple[_Sketches, list[Pair]]:
    """Every verified pair of distinct sets (as rows of their representatives), sorted.

    ``keep(rows_a, rows_b) -> mask`` drops candidate pairs before they are screened or verified,
    so a caller that wants only some pairs (e.g. rows whose labels differ) never holds the rest.
    Candidates are deduplicated ``_CANDIDATE_BUFFER`` at a time, then screened; only the keys of
    pairs that passed the screen are kept (so each is verified once), never every candidate pair:
    1M rows of partly overlapping texts gave ~10^8 candidates (2.7 GB when all were held).
    """
    sk = _sketch(texts, num_perm, lsh_bands(threshold, num_perm), ngram, chunk_size, progress)
    reps = sk.reps
    k = len(reps)
    get = _ShingleCache(texts, ngram)
    seen = _KeySet()  # pairs already verified: only those that passed the screen are kept
    out: list[Pair] = []
    buffer: list[np.ndarray] = []
    held = 0

    def flush() -> None:
        keys = np.unique(np.concatenate(buffer))
        buffer.clear()
        for start in range(0, len(keys), _PAIR_BATCH):
            batch = keys[start : start + _PAIR_BATCH]
            a, b = (batch // np.uint64(k)).astype(np.int64), (batch % np.uint64(k)).astype(np.int64)
            fresh = seen.new(batch[_screen(sk.fingerprints, a, b, threshold)])
            a, b = (fresh // np.uint64(k)).astype(np.int64), (fresh % np.uint64(k)).astype(np.int64)
            for ra, rb in zip(reps[a].tolist(), reps[b].tolist()):
                score = jaccard(get(ra), get(rb))
                if score >= threshold:
                    out.append((ra, rb, score))

    for lo, hi in _band_slices(sk.bands):
        if keep is not None:
            m = keep(reps[lo], reps[hi])
            lo, hi = lo[m], hi[m]
        buffer.append(lo.astype(np.uint64) * np.uint64(k) + hi.astype(np.uint64))
        held += len(lo)
        if held >= _CANDIDATE_BUFFER:
            flush()
            held = 0
    if buffer:
        flush()
    out.sort()
    return sk, out


def _copies(sk: _Sketches, keep: RowFilter | None = None) -> list[Pair]:
    """Each row whose shingle set came earlier, paired with that first occurrence (score 1.0)."""
    first = sk.reps[sk.rep_of]
    rows = np.nonzero(first != np.arange(len(first)))[0]
    if keep is not None and len(rows):
        rows = rows[keep(first[rows], rows)]
    return [(a, b, 1.0) for a, b in zip(first[rows].tolist(), rows.tolist())]


def near_duplicate_pairs(
    texts: Sequence[str],
    threshold: float = 0.8,
    num_perm: int = DEFAULT_NUM_PERM,
    ngram: int = DEFAULT_NGRAM,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    keep: RowFilter | None = None,
) -> list[Pair]:
    """Pairs ``(i, j, jaccard)`` with i < j whose shingle sets have exact Jaccard >= ``threshold``.

    Every pair found is exact; recall is that of the LSH (>= 0.99 at the threshold by design).
    Rows with identical shingle sets are paired with their first occurrence only (score 1.0),
    which is enough for ``clusters_from_pairs`` to give complete clusters without k^2 pairs;
    likewise, inside a bucket of more than ``_BUCKET_SPAN`` distinct sets only nearby members
    are compared. ``progress(done, total)`` is called after each chunk of sketching.
    ``keep(rows_i, rows_j)`` (vectorised, returns a boolean mask) limits the result to the
    pairs it accepts, and is applied before verification: the same pairs as filtering the
    full result afterwards, without ever holding it.
    """
    sk, pairs = _similar_sets(texts, threshold, num_perm, ngram, chunk_size, progress, keep)
    return sorted(pairs + _copies(sk, keep))


def near_duplicate_clusters(
    texts: Sequence[str],
    threshold: float = 0.8,
    num_perm: int = DEFAULT_NUM_PERM,
    ngram: int = DEFAULT_NGRAM,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[list[int]]:
    """Clusters of near-duplicate texts (positions into ``texts``): the components of ``near_duplicate_pairs``.

    Built without the pair list: candidate slices are merged into a component label per set as
    they are verified, and a pair whose two sets are already in one component is skipped
    (unscreened, unverified), since it cannot change the components. Memory is O(rows), not
    O(pairs): on the 1M-row benchmark the pair list alone would be tens of millions of tuples.
    """
    sk = _sketch(texts, num_perm, lsh_bands(threshold, num_perm), ngram, chunk_size, None)
    reps = sk.reps
    labels = np.arange(len(reps))
    get = _ShingleCache(texts, ngram)
    for lo, hi in _band_slices(sk.bands):
        open_ = labels[lo] != labels[hi]
        lo, hi = lo[open_], hi[open_]
        if not len(lo):
            continue
        ok = _screen(sk.fingerprints, lo, hi, threshold)
        lo, hi = lo[ok], hi[ok]
        linked = np.array([jaccard(get(a), get(b)) >= threshold for a, b in zip(reps[lo].tolist(), reps[hi].tolist())], dtype=bool)
        if linked.any():
            labels = merge_components(labels, lo[linked], hi[linked])
    return groups_of(labels[sk.rep_of])


def near_duplicate_matches(
    queries: Sequence[str],
    corpus: Sequence[str],
    threshold: float = 0.8,
    num_perm: int = DEFAULT_NUM_PERM,
    ngram: int = DEFAULT_NGRAM,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[Pair]:
    """Cross-set matches ``(query_index, corpus_index, jaccard)`` with exact Jaccard >= ``threshold``.

    For leakage: which evaluation rows have a near-copy among the training rows. Both sets are
    sketched together; every corpus row matching a query is reported (identical corpus rows
    included). Sorted by (query, corpus) index.
    """
    combined = _Concat(corpus, queries)
    sk, pairs = _similar_sets(combined, threshold, num_perm, ngram, chunk_size, None)
    n_corpus = len(corpus)
    members: dict[int, list[int]] = {}
    for row, k in enumerate(sk.rep_of.tolist()):
        members.setdefault(k, []).append(row)
    rep_id = {int(r): k for k, r in enumerate(sk.reps.tolist())}
    out: set[Pair] = set()

    def link(ka: int, kb: int, score: float) -> None:
        for x in members[ka]:
            for y in members[kb]:
                if x >= n_corpus > y:
                    out.add((x - n_corpus, y, score))

    for k in members:  # identical sets shared by queries and corpus rows
        link(k, k, 1.0)
    for ra, rb, score in pairs:
        link(rep_id[ra], rep_id[rb], score)
        link(rep_id[rb], rep_id[ra], score)
    return sorted(out)


class _Concat(Sequence[str]):
    """Two sequences seen as one, without copying (corpus rows first)."""

    def __init__(self, first: Sequence[str], second: Sequence[str]):
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, i):  # type: ignore[override]
        return self.first[i] if i < len(self.first) else self.second[i - len(self.first)]
