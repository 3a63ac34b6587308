"""UCI Japanese Vowels, read through sktime's own loader from the copy inside its wheel (no network).

9 speakers saying /ae/; each utterance is 7-29 frames of 12 LPC cepstrum coefficients; 270 training
and 370 test utterances; the class is the speaker. `load()` gives time-major padded arrays and each
row's length, the features standardised with the training set's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXTRA = "pip install -e '.[examples]'"


class MissingExtra(SystemExit):
    """A package of the `examples` extra is not installed: the message says which and how to install it."""


@dataclass
class Split:
    x: np.ndarray  # (T_max, N, 12) float32, zeros past each row's length
    lengths: np.ndarray  # (N,) int64
    y: np.ndarray  # (N,) int64, speaker 0..8


def _sktime_loader():
    try:
        from sktime.datasets import load_japanese_vowels
    except ImportError as e:
        raise MissingExtra(
            f"train_vowels.py: the JapaneseVowels data is read from the sktime package, which is not installed "
            f"({e}); install the examples extra: {EXTRA}"
        ) from None
    return load_japanese_vowels


def _split(frame, labels) -> tuple[list[np.ndarray], np.ndarray]:
    """sktime's pd-multiindex frame (utterance, frame) x 12 -> one (T_i, 12) array per utterance."""
    values = frame.to_numpy(np.float32)
    ids = frame.index.get_level_values(0).to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    seqs = np.split(values, starts[1:])
    return seqs, np.asarray(labels).astype(np.int64) - 1  # speakers "1".."9" -> 0..8


def _pad(seqs: list[np.ndarray], mean, std, y) -> Split:
    T = max(len(s) for s in seqs)
    x = np.zeros((T, len(seqs), seqs[0].shape[1]), np.float32)
    for i, s in enumerate(seqs):
        x[: len(s), i] = (s - mean) / std
    return Split(x, np.array([len(s) for s in seqs], np.int64), y)


def load() -> tuple[Split, Split]:
    """(train, test) of JapaneseVowels, standardised by the training set's per-coefficient statistics."""
    loader = _sktime_loader()
    train, y_train = _split(*loader(split="TRAIN", return_type="pd-multiindex"))
    test, y_test = _split(*loader(split="TEST", return_type="pd-multiindex"))
    frames = np.concatenate(train)
    mean, std = frames.mean(0), frames.std(0)
    return _pad(train, mean, std, y_train), _pad(test, mean, std, y_test)
