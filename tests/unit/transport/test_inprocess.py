"""Which tasks nspawn_linear runs on a thread of ansible-playbook, and what a thread worker copies."""
from __future__ import annotations

import typing as t

import pytest
from ansible.inventory.host import Host
from ansible.playbook.block import Block
from ansible.playbook.task import Task

from ansible_nspawn_fast.transport import inprocess

NSPAWN_VARS = {"ansible_connection": "nspawn"}


def task(**fields: t.Any) -> Task:
    ds = {"action": {"module": "ansible.builtin.command", "_raw_params": "true"}, **fields}
    return Task.load(ds, block=Block())


@pytest.fixture(autouse=True)
def loaders(plugin_loader: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(inprocess.WORKERS_ENV, raising=False)


def reason(t_: Task, variables: dict[str, t.Any] | None = None) -> str | None:
    return inprocess.fork_reason(Host("web"), t_, NSPAWN_VARS if variables is None else variables)


def test_a_module_of_an_nspawn_host_takes_a_thread():
    assert reason(task()) is None


@pytest.mark.parametrize("action", ["ansible.builtin.debug", "debug", "ansible.legacy.copy",
                                    "ansible.builtin.template", "ansible.builtin.lineinfile"])
def test_thread_safe_actions_and_plain_modules_take_a_thread(action):
    assert reason(task(action={"module": action})) is None


@pytest.mark.parametrize("fields,why", [
    ({"delegate_to": "elsewhere"}, "delegate_to"),
    ({"async_val": 30}, "async"),
    ({"debugger": "on_failed"}, "task debugger"),
    ({"timeout": 5}, "timeout"),
    ({"action": {"module": "ansible.builtin.script", "_raw_params": "x.sh"}}, "action plugin ansible.builtin.script"),
    ({"action": {"module": "ansible.builtin.pause"}}, "action plugin ansible.builtin.pause"),
])
def test_what_keeps_a_forked_worker_and_says_why(fields, why):
    assert reason(task(**fields)) == why


def test_other_connection_types_fork_as_under_mitogen():
    assert reason(task(), {"ansible_connection": "ssh"}) == inprocess.OTHER_CONNECTION
    assert reason(task(connection="ssh"), {}) == inprocess.OTHER_CONNECTION  # the keyword alone


def test_the_variable_wins_over_the_keyword_as_in_play_context():
    assert reason(task(connection="ssh")) is None
    assert reason(task(connection="nspawn"), {"ansible_connection": "ssh"}) == inprocess.OTHER_CONNECTION


def test_a_templated_connection_forks():
    assert reason(task(), {"ansible_connection": "{{ conn }}"}) == "its connection is not a plain name"


def test_the_environment_switch_forks_everything(monkeypatch):
    monkeypatch.setenv(inprocess.WORKERS_ENV, "fork")
    assert reason(task()) == f"{inprocess.WORKERS_ENV}=fork"


def test_a_thread_worker_copies_what_its_task_changes():
    host = Host("web")
    host.vars["keep"] = 1
    shared = task()
    loader = type("Loader", (), {"_tempfiles": {"/tmp/other-task"}})()
    worker = inprocess.ThreadWorker(final_q=None, task_vars={}, host=host, task=shared,
                                    play_context=None, loader=loader, variable_manager=None,
                                    shared_loader_obj=None, worker_id=3, cliargs={})
    assert worker._task is not shared and worker._task._uuid == shared._uuid
    assert worker._task._parent is not shared._parent  # post_validate templates blocks too
    assert worker._host is not host and worker._host.name == "web"
    worker._host.vars = {}
    assert host.vars == {"keep": 1}
    worker._loader._tempfiles.add("/tmp/this-task")
    assert worker._loader is not loader and "/tmp/this-task" not in loader._tempfiles
    assert not worker.is_alive() and worker.worker_id == 3


def test_a_thread_worker_task_does_not_carry_the_play_s_other_tasks():
    play_block = Block()
    tasks = [Task.load({"action": {"module": "ansible.builtin.command", "_raw_params": str(i)}},
                       block=play_block) for i in range(3)]
    play_block.block = list(tasks)
    worker = inprocess.ThreadWorker(final_q=None, task_vars={}, host=Host("web"), task=tasks[1],
                                    play_context=None, loader=type("L", (), {"_tempfiles": set()})(),
                                    variable_manager=None, shared_loader_obj=None, worker_id=1,
                                    cliargs={})
    assert worker._task._parent.block == []
    assert play_block.block == tasks  # the strategy's block keeps its tasks
    # what the copy and template actions do with their task: no other task is copied along
    again = worker._task.copy()
    assert again._parent.block == [] and again._uuid == tasks[1]._uuid


def test_a_thread_worker_s_prompt_queue_is_a_thread_queue_that_raises_errors_as_workerqueue():
    import ansible.executor.process.worker as worker_module
    from ansible.errors import AnsibleError
    original = worker_module.WorkerQueue
    worker = inprocess.ThreadWorker(final_q=None, task_vars={}, host=Host("web"), task=task(),
                                    play_context=None, loader=type("L", (), {"_tempfiles": set()})(),
                                    variable_manager=None, shared_loader_obj=None, worker_id=1,
                                    cliargs={})
    assert worker_module.WorkerQueue is original  # forked workers still get ansible-core's
    assert not isinstance(worker.worker_queue, original)
    worker.worker_queue.put("answer")
    assert worker.worker_queue.get() == "answer"
    worker.worker_queue.put(AnsibleError("no terminal"))
    with pytest.raises(AnsibleError, match="no terminal"):
        worker.worker_queue.get()
