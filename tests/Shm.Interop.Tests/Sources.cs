using System.IO;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>C programs the tests compile with the machine's cc against include/shm/shm.h.</summary>
internal static class Sources
{
    /// <summary>Strict C: the standard without GNU extensions, and the extra warnings.</summary>
    public const string StrictC = "-std=c11 -Wextra";

    /// <summary>Compiles <paramref name="source"/> with every warning an error, and <paramref name="flags"/>; the program's path.</summary>
    public static string CompileC(string name, string source, string compiler = "cc", string flags = "")
    {
        string directory = Directory.CreateTempSubdirectory("shm-c-").FullName;
        string file = Path.Combine(directory, name + ".c");
        string program = Path.Combine(directory, name);
        string log = Path.Combine(directory, "cc.log");
        File.WriteAllText(file, source);
        string language = compiler == "g++" ? "-x c++ " : "";
        using Child cc = Child.Spawn("/bin/sh", ["-c", $"{compiler} {flags} {language}-O2 -Wall -Werror -pthread -I '{Repository.PathOf("include")}' -o '{program}' '{file}' > '{log}' 2>&1"]);
        Assert.True(cc.WaitOrFail().Succeeded, $"{compiler} {flags} failed (a C compiler is needed for this test): {File.ReadAllText(log)}");
        return program;
    }

    /// <summary>ChannelMessages.MessageOf and Messages.IsIntact, in C, and mapping a segment.</summary>
    private const string Prelude = """
        #include <shm/shm.h>
        #include <sys/mman.h>
        #include <sys/stat.h>

        static inline uint32_t message_of(int writer, int index, unsigned char *bytes)
        {
            uint32_t length = 8 + ((index * 37) + (writer * 11)) % 3000;
            memcpy(bytes, &writer, 4);
            memcpy(bytes + 4, &index, 4);
            for (uint32_t i = 8; i < length; i++) bytes[i] = (unsigned char)(index + i);
            return length;
        }

        /* Messages.IsIntact: index, ~index ^ length, then bytes derived from both. */
        static inline int intact(const unsigned char *m, long length, int32_t expected)
        {
            int32_t index, check;
            if (length < 8) return 0;
            memcpy(&index, m, 4);
            memcpy(&check, m + 4, 4);
            if (index != expected || check != (~index ^ (int32_t)length)) return 0;
            for (long i = 8; i < length; i++) {
                if (m[i] != (unsigned char)((uint32_t)index * 31u + (uint32_t)i * 7u + ((uint32_t)i >> 8))) return 0;
            }
            return 1;
        }

        static inline void fill(int32_t index, unsigned char *m, uint32_t length)
        {
            int32_t check = ~index ^ (int32_t)length;
            memcpy(m, &index, 4);
            memcpy(m + 4, &check, 4);
            for (uint32_t i = 8; i < length; i++) m[i] = (unsigned char)((uint32_t)index * 31u + i * 7u + (i >> 8));
        }

        /* Maps the whole named segment; its size in *size. */
        static inline char *map_segment(const char *name, size_t *size)
        {
            int fd = shm_open(name, O_RDWR, 0);
            if (fd < 0) { perror("shm_open"); exit(2); }
            struct stat st;
            fstat(fd, &st);
            char *base = (char *)mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) { perror("mmap"); exit(2); }
            close(fd);
            *size = (size_t)st.st_size;
            return base;
        }

        static inline void open_channel(struct shm_channel *channel, const char *name, long offset)
        {
            size_t size;
            char *base = map_segment(name, &size);
            int error = shm_channel_open(channel, base + offset, size - (size_t)offset);
            if (error != 0) { fprintf(stderr, "shm_channel_open: %d\n", error); exit(3); }
        }

        """;

    /// <summary>Writes messages 0..N-1 of writer 2: argv = name offset N.</summary>
    public const string CWriter = Prelude + """
        int main(int argc, char **argv)
        {
            struct shm_channel channel;
            struct shm_channel_writer writer;
            static unsigned char bytes[4096];
            (void)argc;
            open_channel(&channel, argv[1], atol(argv[2]));
            int lane = shm_channel_writer_attach(&writer, &channel);
            if (lane < 0) { fprintf(stderr, "attach: %d\n", lane); return 4; }
            for (int i = 0, n = atoi(argv[3]); i < n; i++) {
                uint32_t length = message_of(2, i, bytes);
                int error = shm_channel_write(&writer, bytes, length, 60000);
                if (error != 0) { fprintf(stderr, "write %d: %d\n", i, error); return 5; }
            }
            return shm_channel_complete(&writer) == 0 ? 0 : 6;
        }
        """;

    /// <summary>Reads and checks messages 0..N-1 of writer 1, then the end: argv = name offset N.</summary>
    public const string CReader = Prelude + """
        int main(int argc, char **argv)
        {
            struct shm_channel channel;
            struct shm_channel_reader reader;
            static unsigned char got[4096], want[4096];
            (void)argc;
            open_channel(&channel, argv[1], atol(argv[2]));
            int error = shm_channel_reader_attach(&reader, &channel);
            if (error != 0) { fprintf(stderr, "attach: %d\n", error); return 4; }
            int n = atoi(argv[3]);
            for (int i = 0; i < n; i++) {
                long length = shm_channel_read(&reader, got, sizeof got, 60000);
                uint32_t expected = message_of(1, i, want);
                if (length != (long)expected || memcmp(got, want, expected) != 0) { fprintf(stderr, "message %d wrong (%ld)\n", i, length); return 6; }
            }
            long end = shm_channel_read(&reader, got, sizeof got, 60000);
            shm_channel_reader_detach(&reader);
            return end == SHM_CH_ECLOSED && reader.dead_writers == 0 ? 0 : 7;
        }
        """;

    /// <summary>
    /// A victim of a corrupted channel, as GuardedChannel's .NET victims: argv = name offset
    /// read|write|open. It makes the segment's last page PROT_NONE first; exit codes are
    /// GuardedChannel's (42 corruption reported, 43 closed, 44 timed out, 45 completed, 46 a
    /// message never sent, 47 another error).
    /// </summary>
    public const string CVictim = Prelude + """
        static inline int code_of(long result)
        {
            switch (result) {
            case SHM_CH_ECORRUPT: return 42;
            case SHM_CH_ECLOSED: return 43;
            case SHM_CH_ETIMEDOUT: return 44;
            default: fprintf(stderr, "error %ld\n", result); return 47;
            }
        }

        int main(int argc, char **argv)
        {
            struct shm_channel channel;
            size_t size;
            static unsigned char bytes[65536];
            (void)argc;
            char *base = map_segment(argv[1], &size);
            if (mprotect(base + size - 4096, 4096, PROT_NONE) != 0) { perror("mprotect"); return 2; }
            long offset = atol(argv[2]), result = shm_channel_open(&channel, base + offset, size - 4096 - (size_t)offset);
            if (result != 0 || strcmp(argv[3], "open") == 0) return result == 0 ? 45 : code_of(result);
            if (strcmp(argv[3], "read") == 0) {
                struct shm_channel_reader reader;
                if ((result = shm_channel_reader_attach(&reader, &channel)) != 0) return code_of(result);
                for (int32_t expected = 0;; expected++) {
                    result = shm_channel_read(&reader, bytes, sizeof bytes, 3000);
                    if (result < 0) return code_of(result);
                    if (!intact(bytes, result, expected)) return 46;
                }
            }
            struct shm_channel_writer writer;
            if ((result = shm_channel_writer_attach(&writer, &channel)) < 0) return code_of(result);
            for (int32_t i = 0; i < 3; i++) {
                fill(i, bytes, 200);
                if ((result = shm_channel_write(&writer, bytes, 200, 3000)) != 0) return code_of(result);
            }
            return 45;
        }
        """;

    /// <summary>
    /// Every record size (8 to 4096 bytes) against every 8-aligned head offset of an empty 4 KiB
    /// lane, in one process on private memory: each must fit after at most one refusal and one
    /// look by the reader (which takes the padding). Prints how many pairs never fitted.
    /// </summary>
    public const string CEveryFit = Prelude + """
        static struct shm_channel_writer writer;
        static struct shm_channel_reader reader;
        static unsigned char message[4096], got[4096];

        static inline void filler(uint64_t record)
        {
            if (shm_channel_try_write(&writer, message, (uint32_t)(record - 8)) != 0) { fprintf(stderr, "filler %d\n", (int)record); exit(3); }
            if (shm_channel_try_read(&reader, got, sizeof got) != (long)(record - 8)) { fprintf(stderr, "filler back %d\n", (int)record); exit(3); }
        }

        static inline void move_head_to(uint64_t offset)
        {
            uint64_t at = writer.head & 4095;
            if (at == offset) return;
            if (offset > at) { filler(offset - at); return; }
            filler(4096 - at); /* exactly to the end of the ring: no padding */
            if (offset > 0) filler(offset);
        }

        int main(void)
        {
            struct shm_channel channel;
            size_t size = (size_t)shm_channel_required_length(4096, 1);
            char *memory = (char *)mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            long failures = 0;
            if (memory == MAP_FAILED || shm_channel_init(memory, size, 1, 4096) != 0 || shm_channel_open(&channel, memory, size) != 0) return 2;
            if (shm_channel_writer_attach(&writer, &channel) != 0 || shm_channel_reader_attach(&reader, &channel) != 0) return 2;
            for (uint64_t offset = 0; offset < 4096; offset += 8) {
                for (uint64_t record = 8; record <= 4096; record += 8) {
                    move_head_to(offset);
                    uint32_t length = record - 8 >= ((record >> 3) % 8) ? (uint32_t)(record - 8 - ((record >> 3) % 8)) : 0;
                    memset(message, (int)((offset ^ record) & 0xFF), length);
                    int refused = 0, result;
                    while ((result = shm_channel_try_write(&writer, message, length)) == SHM_CH_EAGAIN && refused++ < 1) {
                        if (shm_channel_try_read(&reader, got, sizeof got) != SHM_CH_EAGAIN) return 4;
                    }
                    if (result == SHM_CH_EAGAIN) { failures++; continue; }
                    if (result != 0) return 5;
                    if (shm_channel_try_read(&reader, got, sizeof got) != (long)length || memcmp(got, message, length) != 0) return 6;
                }
            }
            printf("%ld\n", failures);
            return failures == 0 ? 0 : 1;
        }
        """;

    /// <summary>Includes the header and calls every function it declares (run, it exercises a channel on private memory).</summary>
    public const string CEveryFunction = """
        #include <shm/shm.h>
        #include <sys/mman.h>

        int main(void)
        {
            size_t size = (size_t)shm_channel_required_length(4096, 2) + 64;
            char *memory = (char *)mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (memory == MAP_FAILED) return 2;
            struct shm_mutex *mutex = (struct shm_mutex *)(void *)(memory + shm_channel_required_length(4096, 2));
            struct shm_channel channel;
            struct shm_channel_writer writer;
            struct shm_channel_reader reader;
            char buffer[64];
            if (shm_channel_init(memory, size, 2, 4096) != 0 || shm_channel_open(&channel, memory, size) != 0) return 3;
            if (shm_channel_writer_attach(&writer, &channel) != 0 || shm_channel_reader_attach(&reader, &channel) != 0) return 4;
            if (shm_channel_try_write(&writer, "hello", 5) != 0 || shm_channel_write(&writer, "world", 5, 100) != 0) return 5;
            if (shm_channel_try_read(&reader, buffer, sizeof buffer) != 5 || shm_channel_read(&reader, buffer, sizeof buffer, 100) != 5) return 6;
            if (shm_channel_complete(&writer) != 0 || shm_channel_try_write(&writer, "x", 1) != SHM_CH_ECLOSED) return 7;
            if (shm_channel_read(&reader, buffer, sizeof buffer, 1000) != SHM_CH_ECLOSED || shm_channel_reader_ended(&reader) != 1) return 8;
            shm_channel_reader_detach(&reader);
            if (!shm_process_alive((int32_t)getpid(), shm_self_start_time()) || shm_record_check(8, 1, 0) == shm_record_check(16, 1, 0)) return 9;
            if (shm_is_ready(&mutex->header, SHM_MUTEX) || shm_layout_version(SHM_SEMAPHORE) != SHM_LAYOUT_VERSION) return 10;
            (void)shm_mutex_lock;
            (void)shm_mutex_unlock;
            (void)shm_semaphore_post;
            (void)shm_semaphore_wait;
            (void)shm_event_set;
            munmap(memory, size);
            return 0;
        }
        """;
}
