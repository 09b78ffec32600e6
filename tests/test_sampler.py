"""Identical episodes: a pure function of (suite, part, seed, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.data.episodes import EpisodeSampler, Shape, draw_class_episode
from bench.data.sinusoid import SinusoidSource
from bench.run.grid import expand_grid
from bench.run.harness import build
from bench.suite import load_suite


def test_class_episode_shape_and_distinctness():
    rng = np.random.default_rng(0)
    classes, samples = draw_class_episode(rng, np.full(50, 20), Shape(5, 1, 15))
    assert classes.shape == (5,) and len(set(classes)) == 5
    assert samples.shape == (5, 16)
    assert all(len(set(row)) == 16 for row in samples)


def test_too_few_classes_is_an_error():
    with pytest.raises(ValueError, match="classes"):
        draw_class_episode(np.random.default_rng(0), np.full(3, 20), Shape(5, 1, 1))


def test_same_episodes_for_two_methods(data_root):
    suite = load_suite("omniglot-5w1s", "smoke")
    proto, scratch = expand_grid([suite], ["protonet", "scratch"], [0], "cpu")
    (_, samplers_a), (_, samplers_b) = build(proto, data_root), build(scratch, data_root)
    a, b = samplers_a["test"], samplers_b["test"]
    assert a.fingerprint(20) == b.fingerprint(20)
    for i in (0, 7, 19):
        ea, eb = a.episode(i), b.episode(i)
        assert torch.equal(ea.support_x, eb.support_x) and torch.equal(ea.query_y, eb.query_y)


def test_run_order_does_not_matter():
    sampler = EpisodeSampler(SinusoidSource(), "test", Shape(1, 5, 10), 0, "k")
    forward = [sampler.key(i) for i in range(10)]
    backward = [sampler.key(i) for i in reversed(range(10))][::-1]
    again = EpisodeSampler(SinusoidSource(), "test", Shape(1, 5, 10), 0, "k")
    assert all(np.array_equal(f, b) for f, b in zip(forward, backward))
    assert sampler.fingerprint(10) == again.fingerprint(10)


def test_global_rng_state_does_not_matter():
    sampler = EpisodeSampler(SinusoidSource(), "test", Shape(1, 5, 10), 0, "k")
    np.random.seed(1)
    torch.manual_seed(1)
    first = sampler.fingerprint(5)
    np.random.seed(2)
    torch.manual_seed(2)
    assert sampler.fingerprint(5) == first


def test_seed_and_part_change_episodes():
    def make(part: str, seed: int) -> EpisodeSampler:
        return EpisodeSampler(SinusoidSource(), part, Shape(1, 5, 10), seed, "k")

    base = make("test", 0).fingerprint(10)
    assert make("test", 1).fingerprint(10) != base
    assert make("val", 0).fingerprint(10) != base


def test_sinusoid_episode_follows_the_maml_task_family():
    sampler = EpisodeSampler(SinusoidSource(), "test", Shape(1, 10, 30), 3, "k")
    for i in range(20):
        key = sampler.key(i)
        amplitude, phase, x = key[0], key[1], key[2:]
        assert 0.1 <= amplitude <= 5.0 and 0.0 <= phase <= np.pi
        assert np.all((x >= -5) & (x <= 5)) and len(x) == 40
        ep = sampler.episode(i)
        expected = amplitude * np.sin(ep.query_x.double().numpy() - phase)
        assert np.allclose(ep.query_y.numpy(), expected, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    n_classes=st.integers(1, 40),
    per_class=st.integers(1, 25),
    n_way=st.integers(1, 10),
    k_shot=st.integers(1, 5),
    n_query=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_class_episodes_are_valid_for_any_shape(n_classes, per_class, n_way, k_shot, n_query, seed):
    """Either a valid episode (distinct classes, distinct in-range samples) or a clear error."""
    counts = np.full(n_classes, per_class)
    shape = Shape(n_way, k_shot, n_query)
    if n_way > n_classes or k_shot + n_query > per_class:
        with pytest.raises(ValueError):
            draw_class_episode(np.random.default_rng(seed), counts, shape)
        return
    classes, samples = draw_class_episode(np.random.default_rng(seed), counts, shape)
    assert len(set(classes.tolist())) == n_way and classes.max() < n_classes
    assert samples.shape == (n_way, k_shot + n_query) and samples.max() < per_class
    assert all(len(set(row.tolist())) == k_shot + n_query for row in samples)
