"""mosaic_it.hf: datasets in and out, and an iterable drawing a fresh epoch each pass."""

from __future__ import annotations

import json

import pytest

from mosaic_it import MosaicConfig
from mosaic_it.cli.main import main
from mosaic_it.io.readers import example_path

from ..conftest import needs

datasets = needs("datasets")
hf = needs("mosaic_it.hf")

CONFIG = MosaicConfig(epochs=3, seed=9, max_tokens=1024)


@pytest.fixture(scope="module")
def example_rows() -> list[dict]:
    return [json.loads(line) for line in example_path().read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def cli_rows(tmp_path_factory, example_rows) -> list[dict]:
    """The command line's output for CONFIG, from a messages-format copy of the example."""
    d = tmp_path_factory.mktemp("cli")
    src = d / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps(
                {
                    "id": r["id"],
                    "messages": [
                        {
                            "role": "user",
                            "content": f"{r['instruction']}\n{r['input']}"
                            if r.get("input")
                            else r["instruction"],
                        },
                        {"role": "assistant", "content": r["output"]},
                    ],
                }
            )
            + "\n"
            for r in example_rows
        )
    )
    out = d / "out.jsonl"
    assert (
        main(
            [
                "mosaic",
                str(src),
                str(out),
                "--epochs",
                "3",
                "--seed",
                "9",
                "--max-tokens",
                "1024",
                "--output-format",
                "messages",
                "--keep-originals",
                "-q",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _as_json(rows):
    return [
        dict(r, mosaic=json.loads(r["mosaic"]) if r["mosaic"] is not None else None) for r in rows
    ]


def test_mosaic_dataset_equals_the_command_line(example_rows, cli_rows):
    ds = hf.mosaic_dataset(
        datasets.Dataset.from_list(example_rows),
        CONFIG,
        output_format="messages",
        keep_originals=True,
    )
    assert isinstance(ds, datasets.Dataset) and ds.column_names == ["messages", "mosaic"]
    assert _as_json(ds.to_list()) == cli_rows


def test_iterable_epoch_e_is_the_command_lines_epoch_e(example_rows, cli_rows):
    it = hf.MosaicIterable(example_rows, CONFIG, output_format="messages")
    by_epoch = [
        [r for r in cli_rows if r["mosaic"] and r["mosaic"]["epoch"] == e] for e in range(3)
    ]
    seen = [_as_json(list(it)) for _ in range(3)]  # each pass is the next epoch
    assert seen == by_epoch
    assert seen[0] != seen[1]
    it.set_epoch(1)
    assert _as_json(list(it)) == by_epoch[1]
    # same seed, same stream; epochs past the command line's run go on the same way
    again = hf.MosaicIterable(
        datasets.Dataset.from_list(example_rows), CONFIG, output_format="messages"
    )
    assert list(again.epoch_rows(5)) == list(it.epoch_rows(5))


def test_iterable_as_a_datasets_iterable_dataset(example_rows):
    it = hf.MosaicIterable(example_rows, CONFIG, output_format="prompt-completion")
    ids = datasets.IterableDataset.from_generator(it)
    first, second = list(ids), list(ids)
    assert first == list(it.epoch_rows(0)) and second == list(it.epoch_rows(1))
    assert set(first[0]) == {"prompt", "completion", "mosaic"}


def test_iterable_in_a_torch_dataloader(example_rows):
    torch = needs("torch")
    it = hf.MosaicIterable(example_rows, CONFIG, output_format="alpaca")
    assert isinstance(it, torch.utils.data.IterableDataset)
    expected = sorted(json.dumps(r) for r in it.epoch_rows(2))
    for workers in (0, 2):
        it.set_epoch(2)
        loader = torch.utils.data.DataLoader(it, batch_size=None, num_workers=workers)
        assert sorted(json.dumps(r) for r in loader) == expected


def _epochs_seen(loader) -> list[int]:
    epochs = {json.loads(r["mosaic"])["epoch"] for r in loader}
    assert len(epochs) == 1  # a pass draws one epoch, whatever worker a row came from
    return epochs.pop()


@pytest.mark.parametrize("workers,persistent", [(0, False), (2, False), (2, True)])
def test_dataloader_epochs_follow_set_epoch_and_passes(example_rows, workers, persistent):
    torch = needs("torch")
    it = hf.MosaicIterable(example_rows, CONFIG, output_format="alpaca")
    loader = torch.utils.data.DataLoader(
        it, batch_size=None, num_workers=workers, persistent_workers=persistent
    )
    # without set_epoch, every pass is the next epoch, as with no DataLoader at all
    assert [_epochs_seen(loader) for _ in range(3)] == [0, 1, 2]
    expected = sorted(json.dumps(r) for r in it.epoch_rows(3))
    seen = []
    for epoch in (0, 3, 3, 2):  # a trainer's calls, reaching workers started before them
        it.set_epoch(epoch)
        rows = list(loader)
        seen.append(_epochs_seen(rows))
        if epoch == 3:
            assert sorted(json.dumps(r) for r in rows) == expected
    assert seen == [0, 3, 3, 2]
    # after set_epoch, passes go on from the epoch set
    assert _epochs_seen(loader) == 3


def test_epoch_clock_copies_keep_their_values_apart():
    import copy
    import pickle

    clock = hf.EpochClock(5)
    assert clock.take() == 5 and clock.peek() == 6
    twin = pickle.loads(pickle.dumps(clock))
    assert copy.deepcopy(clock).peek() == twin.peek() == 6
    twin.set(0)
    assert clock.peek() == 6


def test_to_iterable_dataset_epoch_is_set_epoch_however_often_it_is_read(example_rows):
    it = hf.MosaicIterable(example_rows, CONFIG, output_format="messages")
    ds = it.to_iterable_dataset()
    assert isinstance(ds, datasets.IterableDataset)
    epoch_0 = list(it.epoch_rows(0))
    assert list(ds) == list(ds) == epoch_0  # passes (a trainer's peeks) do not move it
    mapped = ds.map(lambda row: {"n": len(row["messages"])})
    mapped.set_epoch(2)  # a trainer calls it on the dataset it was given, after map
    rows = list(mapped)
    assert [r["mosaic"] for r in rows] == [r["mosaic"] for r in it.epoch_rows(2)]
    assert {json.loads(r["mosaic"])["epoch"] for r in rows} == {2}
    assert list(ds) == epoch_0  # the dataset it was mapped from keeps its own epoch
