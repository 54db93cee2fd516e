"""The papermill runner: kernel chatter goes to a per-notebook log, not the console."""

import subprocess
import sys

from lwadapter import runner


def test_stderr_of_child_processes_goes_to_the_log(tmp_path, capfd):
    log = tmp_path / "01.log"
    with runner.stderr_to(log):
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('[IPKernelApp] WARNING | chatter\\n')"],
                       check=True)
    print("after", file=sys.stderr)
    assert log.read_text() == "[IPKernelApp] WARNING | chatter\n"
    assert capfd.readouterr().err == "after\n"


def test_notebooks_are_selected_by_number_in_order():
    assert [nb.name for nb in runner.notebooks(["03", "01"])] == ["01_data_preparation.ipynb",
                                                                 "03_layer_scoring.ipynb"]
