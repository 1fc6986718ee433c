#!/bin/bash
# dracut module: the Coffer guest agent and its runtime in the initrd (docs/boot.md).
#
# The agent is a Node.js program: the initrd carries the node binary (~90-100 MB for Node 20,
# ~35-45 MB compressed) and the agent's dist/ with its production node_modules (~25 MB, less once
# pruned to what `coffer agent` imports). That is large for an initrd; the alternatives are in
# docs/boot.md (a single executable with Node's SEA, or unlocking from the real root with the
# agent on a dm-verity protected /usr).

check() {
    require_binaries node cryptsetup || return 1
    [[ -f /usr/lib/coffer/bin/coffer ]] || { derror "coffer: /usr/lib/coffer (bin/, dist/, node_modules/) is missing"; return 1; }
    [[ -f /etc/coffer/agent.yaml ]] || { derror "coffer: /etc/coffer/agent.yaml is missing"; return 1; }
    # Only when asked for (dracut --add coffer): it changes what a boot failure does.
    return 255
}

depends() {
    echo systemd systemd-networkd crypt dm
    return 0
}

installkernel() {
    # configfs-tsm and the SEV-SNP / TDX guest drivers; the vTPM.
    instmods configfs tsm sev-guest tdx-guest tpm_tis tpm_crb dm_crypt
}

install() {
    inst_binary node
    inst_binary cryptsetup
    inst_multiple -o mkfs.ext4 mkfs.xfs systemctl
    # The agent's code: the package tree (bin/, dist/, production node_modules/) under
    # /usr/lib/coffer; /usr/bin/coffer is a symlink to its bin/coffer (node resolves the link, so
    # bin/coffer finds ../dist).
    inst_dir /usr/lib/coffer
    cp -a --no-preserve=ownership /usr/lib/coffer/. "${initdir}/usr/lib/coffer/"
    ln_r /usr/lib/coffer/bin/coffer /usr/bin/coffer
    inst_simple /etc/coffer/agent.yaml
    # The broker's CA or pinned certificate, when the configuration names a file.
    [[ -f /etc/coffer/broker-ca.pem ]] && inst_simple /etc/coffer/broker-ca.pem
    inst_simple "$moddir/coffer-unlock.service" "$systemdsystemunitdir/coffer-unlock.service"
    $SYSTEMCTL -q --root "$initdir" enable coffer-unlock.service
    # No emergency shell on failure: nothing interactive may remain reachable.
    mkdir -p "${initdir}/etc/cmdline.d"
    echo 'rd.shell=0 rd.emergency=poweroff' > "${initdir}/etc/cmdline.d/90coffer.conf"
}
