"""The CLI's ingest summary: a warning shared by many files is shown for a few of them and counted."""

from wbl_assistant.cli import SAME_WARNING_SHOWN, print_ingest_summary
from wbl_assistant.config import Settings
from wbl_assistant.ingest_state import DocumentResult, IngestReport


def test_a_warning_many_files_share_is_shown_a_few_times_then_counted(tmp_path, capsys):
    shared = "no catalog entry: title taken from the PDF"
    results = [DocumentResult(f"d{n}", f"d{n}.pdf", "unchanged", warning=shared) for n in range(40)]
    results.append(DocumentResult("odd", "odd.pdf", "added", warning="page 3 has no text"))
    print_ingest_summary(IngestReport(results), Settings.from_env(data_dir=tmp_path))
    err = capsys.readouterr().err
    assert err.count(shared) == SAME_WARNING_SHOWN + 1
    assert f"... and {40 - SAME_WARNING_SHOWN} more files: {shared}" in err
    assert "odd.pdf: page 3 has no text" in err and "d0.pdf" in err and "d39.pdf" not in err
