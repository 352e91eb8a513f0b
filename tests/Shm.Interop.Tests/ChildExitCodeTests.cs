using System;
using System.Text;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>What a forked body's end becomes: its exit status, whatever the body returns or throws.</summary>
public class ChildExitCodeTests
{
    private sealed class PoisonedMessage : Exception
    {
        public override string Message => throw new InvalidOperationException("the message itself throws");
    }

    [Fact]
    public void A_body_whose_exception_message_throws_still_ends_the_child_with_exit_70()
    {
        using Child child = Child.Fork(() => throw new PoisonedMessage());

        ChildExit exit = child.WaitOrFail();

        Assert.Equal(Child.UnhandledExceptionExitCode, exit.ExitCode);
        Assert.False(Native.Exists(child.Pid));
    }

    [Fact]
    public void A_body_that_returns_256_fails_instead_of_reading_as_success()
    {
        using var stderr = SharedRegion.CreateMemfd("child-stderr", 4096);
        int fd = (int)stderr.Descriptor!.DangerousGetHandle();
        Native.Dup2(0, 0);
        using Child child = Child.Fork(() =>
        {
            Native.Dup2(fd, 2);
            return 256;
        });

        ChildExit exit = child.WaitOrFail();

        Assert.Equal(Child.UnhandledExceptionExitCode, exit.ExitCode);
        Assert.Contains("returned 256", Encoding.UTF8.GetString(stderr.AsReadOnlySpan()), StringComparison.Ordinal);
    }
}
