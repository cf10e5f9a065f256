from __future__ import annotations

import pytest

from zerosearch_rl.records import Document, Segment, SegmentKind, Trajectory


def test_document_contents_round_trip():
    doc = Document("7", "Lima", "Capital of Peru.", 1.5)
    assert doc.contents == '"Lima"\nCapital of Peru.'
    assert Document.from_contents("7", doc.contents, 1.5) == doc
    assert Document.from_contents("8", "no title line") == Document("8", "", "no title line")
    assert Document("9", "", "body").contents == "body"


def make_trajectory():
    t = Trajectory(sample_id="q1#0", group_id="q1", question="Q?", answers=("A",))
    t.add(SegmentKind.PROMPT, [1, 2, 3])
    t.add(SegmentKind.POLICY, [4, 5], [-0.1, -0.2])
    t.add(SegmentKind.OBSERVATION, [6, 7, 8])
    t.add(SegmentKind.POLICY, [9], [-0.3])
    t.add(SegmentKind.OBSERVATION, [])  # empty runs are dropped
    return t


def test_mask_and_logprobs_are_derived_from_segments():
    t = make_trajectory()
    assert t.input_ids == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert t.loss_mask == [0, 0, 0, 1, 1, 0, 0, 0, 1]
    assert t.behaviour_logprobs == [0.0, 0.0, 0.0, -0.1, -0.2, 0.0, 0.0, 0.0, -0.3]
    assert t.prompt_length == 3
    assert (t.count(SegmentKind.POLICY), t.count(SegmentKind.OBSERVATION)) == (3, 3)
    assert len(t.segments) == 4


def test_segments_refuse_misaligned_logprobs():
    with pytest.raises(ValueError, match="one behaviour log-prob per token: 2 tokens, 1 log-probs"):
        Segment(SegmentKind.POLICY, (1, 2), (-0.5,))
    with pytest.raises(ValueError, match="no log-probs"):
        Segment(SegmentKind.POLICY, (1,), None)
    with pytest.raises(ValueError, match="observation segment must not carry log-probs"):
        Segment(SegmentKind.OBSERVATION, (1,), (-0.1,))
