"""CNTK text format: prepare_mnist's writer, the training script's reader, and the real files they make."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import convnet_mnist
import prepare_mnist


def hand_drawn_one():
    """A "1": a vertical stroke of full ink in column 14, rows 4..23, with half ink to its left."""
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 14] = 255
    image[4:24, 13] = 128
    return image


def hand_drawn_seven():
    """A "7": a top bar in row 5 and a diagonal down to the lower left, with faint ink (7) on the bar's end."""
    image = np.zeros((28, 28), np.uint8)
    image[5, 8:21] = 254
    image[5, 21] = 7
    for row in range(6, 22):
        image[row, 20 - (row - 6) // 2] = 200
    return image


def ctf_line(label, image):
    """One sample in the format that CNTK's MNIST installer writes, spelled out by hand."""
    one_hot = ["0"] * 10
    one_hot[label] = "1"
    return "|labels " + " ".join(one_hot) + " |features " + " ".join(str(value) for value in image.ravel()) + "\n"


def test_writer_matches_lines_built_by_hand():
    images = np.stack([hand_drawn_one(), hand_drawn_seven()])
    written = prepare_mnist.format_ctf(images, [1, 7])

    assert written == (ctf_line(1, images[0]) + ctf_line(7, images[1])).encode()
    first = written.split(b"\n")[0]
    assert first.startswith(b"|labels 0 1 0 0 0 0 0 0 0 0 |features 0 0 0 ")
    assert b" 128 255 0 " in first and first.endswith(b" 0")
    # 38 bytes of labels and stream names, 783 spaces, 744 one-digit and 40 three-digit values.
    assert len(first) == 38 + 783 + 744 + 40 * 3


@settings(max_examples=25, deadline=None)
@given(
    images=arrays(np.uint8, st.tuples(st.integers(1, 12), st.just(784))),
    data=st.data(),
)
def test_writer_reader_round_trip(tmp_path_factory, images, data):
    labels = data.draw(arrays(np.int64, len(images), elements=st.integers(0, 9)))
    path = tmp_path_factory.mktemp("ctf") / "round-trip.txt"
    prepare_mnist.write_ctf(path, images, labels)

    dataset = convnet_mnist.load_dataset(str(path), None)

    assert dataset.features.dtype == np.uint8
    np.testing.assert_array_equal(dataset.features, images)
    np.testing.assert_array_equal(dataset.classes, labels)


def test_reader_reads_the_general_format(tmp_path):
    """Other CTF writers: real numbers, streams in any order, runs of blanks, CRLF line ends."""
    features = " ".join(["0.5"] + ["0"] * 782 + ["300"])
    path = tmp_path / "general.txt"
    path.write_bytes("|features  {} |labels 0 0 1 0 0  0 0 0 0 0\r\n".format(features).encode())

    dataset = convnet_mnist.load_dataset(str(path), None)

    assert dataset.features.dtype == np.float32
    assert dataset.features[0, 0] == 0.5 and dataset.features[0, -1] == 300
    assert dataset.classes.tolist() == [2]


def test_reader_takes_the_first_samples_only(tmp_path):
    path = tmp_path / "three.txt"
    prepare_mnist.write_ctf(path, np.stack([hand_drawn_one(), hand_drawn_seven(), hand_drawn_one()]), [1, 7, 1])

    assert convnet_mnist.load_dataset(str(path), 2).classes.tolist() == [1, 7]
    with pytest.raises(convnet_mnist.DataError, match=r"three.txt holds 3 samples, fewer than the 4 asked for"):
        convnet_mnist.load_dataset(str(path), 4)


def good_line(label=3):
    return ctf_line(label, hand_drawn_one())


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (good_line().replace(" 0\n", "\n"), r"line 2: \|features has 783 values, expected 784"),
        (good_line().replace(" 0\n", " 0 0\n"), r"line 2: \|features has 785 values, expected 784"),
        (good_line().replace(" 128 255", " 128\t7 255", 1), r"line 2: \|features has 785 values, expected 784"),
        (good_line().replace(" 255 ", " x ", 1), r"line 2: \|features value 'x' is not a number"),
        (good_line().replace("|labels 0 0 0 1", "|labels 0 0 1 1"), r"line 2: \|labels is not one-hot"),
        (good_line().replace("|labels", "|label"), r"line 2: no \|labels field"),
        ("3 " + good_line(), r"line 2: text before the first '\|'"),
    ],
    ids=["783-features", "785-features", "tab-hides-a-value", "not-a-number", "not-one-hot", "no-labels", "prefix"],
)
def test_reader_names_the_file_and_line_of_bad_data(tmp_path, bad_line, message):
    path = tmp_path / "Train-28x28_cntk_text.txt"
    path.write_text(good_line() + bad_line + good_line())

    with pytest.raises(convnet_mnist.DataError, match=r"Train-28x28_cntk_text.txt, " + message):
        convnet_mnist.load_dataset(str(path), None)


def test_reader_rejects_missing_and_empty_files(tmp_path):
    with pytest.raises(convnet_mnist.DataError, match=r"data file not found: .*absent.txt"):
        convnet_mnist.load_dataset(str(tmp_path / "absent.txt"), None)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(convnet_mnist.DataError, match=r"empty.txt holds no samples"):
        convnet_mnist.load_dataset(str(tmp_path / "empty.txt"), None)


def test_prepared_files_are_the_quickstarts(mnist_dir):
    train_path, test_path = mnist_dir / prepare_mnist.TRAIN_FILE, mnist_dir / prepare_mnist.TEST_FILE
    assert train_path.stat().st_size == 111_735_994
    assert test_path.stat().st_size == 18_649_443

    train = convnet_mnist.load_dataset(str(train_path), None)
    test = convnet_mnist.load_dataset(str(test_path), None)

    assert np.bincount(train.classes).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(test.classes).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.features.shape == (60_000, 784) and test.features.shape == (10_000, 784)
    assert train.features.max() == 255 and test.features.max() == 255
    assert prepare_mnist.prepare(mnist_dir, report=lambda message: None).written is False
