package cmdutil

import (
	"github.com/spf13/pflag"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
)

// ContainerFlags are the caps on containers (archives, packages, images,
// compressed files) a command can raise: --max-container-*.
type ContainerFlags struct{ lim container.Limits }

// Register adds the flags to fl, with internal/limits' defaults.
func (c *ContainerFlags) Register(fl *pflag.FlagSet) {
	c.lim = csv.DefaultContainerLimits()
	fl.IntVar(&c.lim.MaxDepth, "max-container-depth", c.lim.MaxDepth, "containers nested deeper than `N` (a zip in a tar.gz is 2) are findings")
	fl.IntVar(&c.lim.MaxMembers, "max-container-members", c.lim.MaxMembers, "a container of more than `N` members is a finding")
	fl.Int64Var(&c.lim.MaxExpandedSize, "max-container-size", c.lim.MaxExpandedSize, "a container whose members expand to more than `BYTES` in all is a finding")
	fl.Int64Var(&c.lim.MaxRatio, "max-container-ratio", c.lim.MaxRatio, "a member or stream expanding more than `N` bytes per compressed byte is a finding")
	fl.Int64Var(&c.lim.MemberInMemory, "max-member-size", c.lim.MemberInMemory, "a binary or nested container in a container is held in memory to be judged: larger than `BYTES` is a finding")
}

// Limits returns the caps the flags say.
func (c *ContainerFlags) Limits() *container.Limits {
	l := c.lim
	return &l
}
