"""Telling a root that went away (an unmounted share) from files really deleted.

When a network share under a watched folder is unmounted, or its server
exports an empty directory (its own disk not mounted), every known file
seems to vanish at once. Reporting them all as gone would mark the whole
ledger deleted; so before any *gone* is reported, :class:`RootGuard` checks
the root, and the source treats the root as unavailable instead (status
line, a ``source.root_unavailable`` warning, a retry walk soon) when:

* the root's device (``st_dev``) differs from the one seen at ``start()``
  or at the first walk: an unmount (or a mount) happened on the path; or
* the root cannot be stat'ed at all (a parent mount went away); or
* the root is completely empty (not even ignored entries) while the ledger
  knows at least :data:`EMPTY_ROOT_MIN_KNOWN` files under it.

Costs, by design: a deliberate ``rm -r inbox/*`` of two or more known files,
all seen in one poll, is not reported as gone until something appears in the
root again (any new entry; the next walk then reports them). Deleting files
one at a time, or the last single file, is reported as usual. A device
change is not accepted until docproc restarts, since a share mounted *after*
start cannot be told from a share unmounted since; the status says so.
"""

# The root is a plain str, as in walk.py.
# ruff: noqa: PTH116

from __future__ import annotations

import os

from docproc.sources.walk import root_reason

EMPTY_ROOT_MIN_KNOWN = 2  # known files below which an empty root is taken at its word


class RootGuard:
    """Remembers the root's device and judges whether the root looks unmounted.

    Args:
        root: the watched folder, absolute and normalised.
    """

    def __init__(self, root: str) -> None:
        self._root = root
        self._device: int | None = None

    def remember(self, device: int) -> None:
        """Take ``device`` as the root's own, unless one was remembered already."""
        if self._device is None:
            self._device = device

    def device_changed(self) -> str | None:
        """Why the root looks unmounted by its device, or ``None`` (also if unreadable)."""
        try:
            device = os.stat(self._root).st_dev
        except OSError:
            return None  # the walk reports an unreadable root
        return self._judge(device)

    def check(self, known: int) -> str | None:
        """Why vanished files must not be reported gone now, or ``None`` if they may.

        Args:
            known: how many files the ledger holds as live under the root.
        """
        try:
            device = os.stat(self._root).st_dev
            empty = known >= EMPTY_ROOT_MIN_KNOWN and _is_empty(self._root)
        except OSError as exc:
            return root_reason(self._root, exc)
        changed = self._judge(device)
        if changed is None and empty:
            return f"root is empty but {known} files were known; not treating them as deleted"
        return changed

    def _judge(self, device: int) -> str | None:
        self.remember(device)
        if device != self._device:
            return "root looks unmounted: device changed since start; restart docproc if intended"
        return None


def _is_empty(directory: str) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is None
