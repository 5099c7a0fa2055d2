/*
 * datacrumbs_probe_configurator_exec: the setgid launcher of the probe configurator.
 *
 * Why a compiled program: the signer identifies its peer by /proc/<pid>/exe, and a Python
 * script's exe is the interpreter, shared by every script on the system. This binary is the
 * one executable the signer trusts; it embeds the installation's Python and runs exactly one
 * module, datacrumbs.configurator.exec_main, with the caller's arguments.
 *
 * Why it is safe to make setgid: the dynamic loader runs it in secure mode (LD_PRELOAD and
 * LD_LIBRARY_PATH are ignored, the process is not dumpable, so the user cannot ptrace it), and
 * Python is initialised in isolated mode: PYTHON* variables, the user site directory and the
 * current directory are ignored, so the user cannot swap the code that runs.
 *
 * DATACRUMBS_PYTHON (P/libexec/datacrumbs/venv/bin/python, whose pyvenv.cfg selects the runtime's packages)
 * and DATACRUMBS_BUILD_ID (a digest of what the binary was built from, so the installer can tell
 * an up-to-date binary without rebuilding) are set by datacrumbs/install/launcher.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifndef DATACRUMBS_PYTHON
#error "DATACRUMBS_PYTHON must name the interpreter of the installation's venv"
#endif
#ifndef DATACRUMBS_BUILD_ID
#error "DATACRUMBS_BUILD_ID must be set by the build"
#endif

/* Kept in the binary (used) so the installer can find it in the bytes. */
const char datacrumbs_build_id[] = "datacrumbs-launcher-build:" DATACRUMBS_BUILD_ID;

static const char entry_module[] = "datacrumbs.configurator.exec_main";

int main(int argc, char **argv)
{
    PyPreConfig preconfig;
    PyConfig config;
    PyStatus status;

    if (datacrumbs_build_id[0] == '\0')
        return 1;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1; /* paths and messages in UTF-8 whatever the caller's locale */
    status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status))
        Py_ExitStatusException(status);
    PyConfig_InitIsolatedConfig(&config); /* isolated, safe_path, no env, no user site */
    config.write_bytecode = 0;            /* never write .pyc files as the calling user */
    config.parse_argv = 0;                /* argv goes to the configurator, not to Python */

    status = PyConfig_SetBytesString(&config, &config.program_name, DATACRUMBS_PYTHON);
    if (PyStatus_Exception(status))
        goto fail;
    /* executable = the venv's python: its pyvenv.cfg makes the venv's site-packages used. */
    status = PyConfig_SetBytesString(&config, &config.executable, DATACRUMBS_PYTHON);
    if (PyStatus_Exception(status))
        goto fail;
    status = PyConfig_SetBytesString(&config, &config.run_module, entry_module);
    if (PyStatus_Exception(status))
        goto fail;
    status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (PyStatus_Exception(status))
        goto fail;
    status = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(status))
        goto fail;
    PyConfig_Clear(&config);
    return Py_RunMain();

fail:
    PyConfig_Clear(&config);
    Py_ExitStatusException(status);
}
