"""The report's number format: scores keep their digits, throughputs lose theirs."""

from qwen_pipe.report import fmt


def test_number_format_follows_the_magnitude():
    assert fmt(0.12345) == "0.1235"
    assert fmt(1.0) == "1.0000"  # a perfect score reads like the others
    assert fmt(2.0954) == "2.10"
    assert fmt(2403.9) == "2,404"
    assert fmt(-0.25) == "-0.2500"
    assert fmt(7) == "7" and fmt(2097152) == "2,097,152" and fmt(None) == "-" and fmt(True) == "yes"
