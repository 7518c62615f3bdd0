"""The open positions of a capital run, ordered by (exit time, opening
order): a sorted ring for small books, a binary heap beyond ``SMALL_BOOK``
(``sweeps.capital_run_nb`` chooses). Numba helpers, inlined into the sweeps.
"""

from __future__ import annotations

import numba as nb

# The open positions: a binary min-heap of slot ids ordered by (exit time,
# opening order). ``heap`` is always a permutation of the slots: ``heap[:count]``
# is the heap, the rest are free slots, so a push reuses the slot a pop freed
# and a sift moves one small integer instead of four fields.


@nb.njit(cache=True, nogil=True, inline="always")
def _before_nb(exit_ts, order, a, b):
    return exit_ts[a] < exit_ts[b] or (exit_ts[a] == exit_ts[b] and order[a] < order[b])


@nb.njit(cache=True, nogil=True, inline="always")
def heap_push_nb(heap, exit_ts, order, count):
    """Sift up the slot ``heap[count]`` (its fields already written)."""
    i = count
    slot = heap[i]
    while i > 0:
        parent = (i - 1) // 2
        if not _before_nb(exit_ts, order, slot, heap[parent]):
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = slot
    return count + 1


@nb.njit(cache=True, nogil=True, inline="always")
def heap_pop_nb(heap, exit_ts, order, count):
    """Remove the root; it ends at ``heap[count - 1]``. Returns the new count."""
    last = count - 1
    root = heap[0]
    slot = heap[last]
    heap[last] = root
    i = 0
    while True:
        child = 2 * i + 1
        if child >= last:
            break
        if child + 1 < last and _before_nb(exit_ts, order, heap[child + 1], heap[child]):
            child += 1
        if not _before_nb(exit_ts, order, heap[child], slot):
            break
        heap[i] = heap[child]
        i = child
    if last > 0:
        heap[i] = slot
    return last


# The open positions of a capital run, with at most ``SMALL_BOOK`` slots: a
# ring of ``mask + 1`` (a power of two) entries sorted by (exit time, opening
# order), oldest exit at ``head``. A new position is always the latest opened,
# so it goes after every entry with the same exit time: insertion walks back
# from the tail while the entry there exits strictly later (new exits are
# mostly the latest, so few entries move), and the next to close is always
# at ``head``. Measured on data set B (25 positions, the account full much
# of the time) a run costs less than half of what it does on the heap: no
# sift, and the pop is ``head += 1``. Larger books use the heap above
# (a sorted insertion could move O(slots) entries).
SMALL_BOOK = 64


@nb.njit(cache=True, nogil=True, inline="always")
def ring_insert_nb(b_ts, b_size, b_pnl, head, count, mask, exit_t, size, pnl):
    """Insert a position into the sorted ring ``head : head + count``."""
    j = head + count
    while j > head:
        p = (j - 1) & mask
        if b_ts[p] <= exit_t:
            break
        q = j & mask
        b_ts[q] = b_ts[p]
        b_size[q] = b_size[p]
        b_pnl[q] = b_pnl[p]
        j -= 1
    q = j & mask
    b_ts[q] = exit_t
    b_size[q] = size
    b_pnl[q] = pnl
