"""Passwords: the rules a new one must meet, and argon2id hashing at a bounded cost.

Each check costs 19 MiB and about 30 ms of one core (OWASP's m=19 MiB, t=2, p=1), and
a process runs at most `HASH_SLOTS` at once, in threads of the lowest priority: a flood of
sign-ins can neither fill the memory nor take the CPU from residents' submissions.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import sys
import threading
from collections.abc import Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 256  # longer input is refused before any hashing
HASH_SLOTS = 2  # per process

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_slots = threading.BoundedSemaphore(HASH_SLOTS)

# The commonest passwords in Chinese leaks and worldwide, as words: `password123` or
# `520woaini` is found by taking digits and symbols off the ends first (digits alone are refused anyway).
COMMON = frozenset(
    (
        "password",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "qwerty",
        "qwertyui",
        "qwertyuiop",
        "asdfghjkl",
        "asdfgh",
        "zxcvbnm",
        "qazwsx",
        "qazwsxedc",
        "1qaz2wsx",
        "1qaz2wsx3edc",
        "1q2w3e4r",
        "1q2w3e4r5t",
        "1q2w3e4r5t6y",
        "q1w2e3r4",
        "q1w2e3r4t5",
        "abc",
        "abcd",
        "abcde",
        "abcdef",
        "abcdefg",
        "abcdefgh",
        "abcdefghij",
        "admin",
        "administrator",
        "root",
        "user",
        "guest",
        "test",
        "welcome",
        "letmein",
        "iloveyou",
        "iloveu",
        "woaini",
        "wojiushiwo",
        "nihao",
        "zhangwei",
        "wangwei",
        "liuyang",
        "monkey",
        "dragon",
        "football",
        "baseball",
        "sunshine",
        "princess",
        "shadow",
        "master",
        "superman",
        "batman",
        "trustno1",
        "whatever",
        "michael",
        "computer",
        "internet",
        "hello",
        "hellokitty",
        "changeme",
        "secret",
    )
)
_ENDS = "0123456789!@#$%^&*()_+-=.,?~ "


class PasswordError(ValueError):
    pass


def check_new_password(password: str, username: str) -> None:
    """Refuse a password that is too short, too long, or among the first ones guessed."""
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"password: at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"password: at most {MAX_LENGTH} characters")
    if not password.strip():
        raise PasswordError("password: not only spaces")
    if len(set(password)) < 5:
        raise PasswordError("password: too simple (at least 5 different characters)")
    lowered = password.lower()
    if sum(not c.isdigit() for c in password) <= 2:
        raise PasswordError("password: too simple (digits alone, like a birthday or phone number, are guessed first)")
    cores = {lowered, lowered.strip(_ENDS), lowered.rstrip(_ENDS), lowered.lstrip(_ENDS)}
    if cores & COMMON:
        raise PasswordError("password: one of the commonest passwords; choose another")
    if username.lower() in cores:
        raise PasswordError("password: must not be the username")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@contextlib.contextmanager
def hash_slot() -> Iterator[bool]:
    """A place among the `HASH_SLOTS` hashes this process may run; False when all are taken."""
    free = _slots.acquire(blocking=False)
    try:
        yield free
    finally:
        if free:
            _slots.release()


def verify(stored: str | None, password: str) -> tuple[bool, str | None]:
    """Whether the password matches, and its new hash when the stored one has old parameters.

    Without a stored hash the same work is done against a dummy, so an unknown name takes
    as long to refuse as a wrong password.
    """
    return _pool().submit(_verify, stored, password).result()


def _verify(stored: str | None, password: str) -> tuple[bool, str | None]:
    try:
        _hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has")


@functools.cache
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(HASH_SLOTS, "password-hash", initializer=_lower_priority)


def _lower_priority() -> None:
    """Hashing threads run at nice 19: they get the CPU that answering residents leaves over.

    The database work of a sign-in stays in ordinary threads, so a starved hash never holds
    a lock that a resident's submission waits for.
    """
    if sys.platform == "linux":  # there a thread id names the thread alone
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
