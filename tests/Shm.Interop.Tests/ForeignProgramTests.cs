using System;
using System.IO;
using System.Text;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>Our segments are raw POSIX objects: C and Python attach to ours, and we to theirs.</summary>
public sealed class ForeignProgramTests : IDisposable
{
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    // Python before 3.13 registers every attached segment with its resource tracker, which then
    // unlinks it at exit (cpython gh-82300); unregistering keeps the creator's ownership intact.
    private const string PythonReader = """
        import sys
        from multiprocessing import shared_memory, resource_tracker
        shm = shared_memory.SharedMemory(name=sys.argv[1])
        resource_tracker.unregister(shm._name, "shared_memory")
        text = bytes(shm.buf[:15]).decode()
        shm.buf[64:78] = b"hello from py!"
        shm.close()
        sys.exit(0 if text == "hello from .NE" + "T" else 3)
        """;

    private const string PythonCreator = """
        import sys
        from multiprocessing import shared_memory, resource_tracker
        shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=4096)
        resource_tracker.unregister(shm._name, "shared_memory")
        shm.buf[:13] = b"made by Pytho" 
        shm.buf[13:14] = b"n"
        shm.close()
        """;

    private const string CProgram = """
        #include <fcntl.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <sys/stat.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            int fd = shm_open(argv[1], O_RDWR, 0);
            if (fd < 0) return 2;
            struct stat st;
            fstat(fd, &st);
            char *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) return 3;
            int ok = memcmp(p, "hello from .NET", 15) == 0 && st.st_size == 4096;
            memcpy(p + 64, "hello from C!", 13);
            munmap(p, st.st_size);
            close(fd);
            return ok ? 0 : 4;
        }
        """;

    [Fact]
    public void Python_attaches_to_our_segment_by_name()
    {
        string name = _shm.UniqueName();
        using var region = SharedRegion.CreateNamed(name, 4096);
        Encoding.ASCII.GetBytes("hello from .NET").CopyTo(region.AsSpan());

        using Child python = Child.Spawn("python3", ["-c", PythonReader, name]);

        Assert.Equal(0, python.WaitOrFail().ExitCode);
        Assert.Equal("hello from py!", Encoding.ASCII.GetString(region.AsReadOnlySpan(64, 14)));
        Assert.True(DevShm.Exists(name)); // Python did not unlink what it only attached to
    }

    [Fact]
    public void We_attach_to_a_segment_Python_created()
    {
        string name = _shm.UniqueName();
        using (Child python = Child.Spawn("python3", ["-c", PythonCreator, name]))
        {
            Assert.Equal(0, python.WaitOrFail().ExitCode);
        }

        using (var region = SharedRegion.OpenNamed(name))
        {
            Assert.Equal(4096, region.Length);
            Assert.Equal("made by Python", Encoding.ASCII.GetString(region.AsReadOnlySpan(0, 14)));
        }
        Assert.True(DevShm.Exists(name)); // opening never unlinks
        SharedRegion.Unlink(name);
    }

    [Fact]
    public void A_C_program_attaches_to_our_segment_by_name()
    {
        string directory = Directory.CreateTempSubdirectory("shm-c-").FullName;
        try
        {
            string source = Path.Combine(directory, "attach.c");
            string program = Path.Combine(directory, "attach");
            File.WriteAllText(source, CProgram);
            using (Child cc = Child.Spawn("cc", ["-O2", "-o", program, source, "-lrt"]))
            {
                Assert.True(cc.WaitOrFail().Succeeded, "cc failed: a C compiler is needed for this test");
            }
            string name = _shm.UniqueName();
            using var region = SharedRegion.CreateNamed(name, 4096);
            Encoding.ASCII.GetBytes("hello from .NET").CopyTo(region.AsSpan());

            using Child c = Child.Spawn(program, ["/" + name]);

            Assert.Equal(0, c.WaitOrFail().ExitCode);
            Assert.Equal("hello from C!", Encoding.ASCII.GetString(region.AsReadOnlySpan(64, 13)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
