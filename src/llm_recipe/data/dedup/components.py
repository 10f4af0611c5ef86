"""Duplicate clusters as connected components, with a deterministic kept document.

Near-duplicate edges are not transitive (A~B and B~C with A !~ C), but for dedup a chain of
near copies is one family and should leave one survivor, so clusters are the connected
components of the duplicate-pair graph (the result union-find gives; scipy's csgraph does it
in compiled code). The survivor is the smallest document index, i.e. the first one seen, so
the choice does not depend on how the work was split or scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class Clusters:
    rep: np.ndarray  # int64 per document: index of its cluster's kept document (itself if unique)

    @property
    def keep(self) -> np.ndarray:
        return self.rep == np.arange(len(self.rep))

    @property
    def n_removed(self) -> int:
        return int(len(self.rep) - np.count_nonzero(self.keep))

    def sizes(self) -> np.ndarray:
        """Sizes of clusters with at least two members."""
        counts = np.bincount(self.rep, minlength=len(self.rep))
        return counts[counts >= 2]

    def members(self) -> dict[int, list[int]]:
        """kept index -> all member indices (kept first), for clusters of size >= 2."""
        out: dict[int, list[int]] = {}
        for i in np.flatnonzero(~self.keep):
            out.setdefault(int(self.rep[i]), [int(self.rep[i])]).append(int(i))
        return out


def component_reps(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, rep): the documents that occur in `pairs` (sorted) and the smallest index of each
    one's component. Memory follows the pairs, not the corpus: unpaired documents keep themselves."""
    nodes, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(-1, 2)
    n = len(nodes)
    graph = coo_matrix((np.ones(len(local), dtype=np.int8), (local[:, 0], local[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max(initial=-1) + 1, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n, dtype=np.int64))  # nodes are sorted: min local = min index
    return nodes, nodes[first[labels]]


def cluster_pairs(n_docs: int, pairs: np.ndarray) -> Clusters:
    """Connected components of `pairs` over `n_docs` nodes; rep = smallest index per component."""
    rep = np.arange(n_docs, dtype=np.int64)
    if len(pairs):
        nodes, node_rep = component_reps(pairs)
        rep[nodes] = node_rep
    return Clusters(rep)
